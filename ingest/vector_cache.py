"""A small on-disk cache of vectors, keyed by embedder, kind (query or document side) and text.

- Query side (FAQ phrasings): loading a new index version re-embeds only phrasings it has not seen.
- Document side (chunks): a refresh embeds only chunk texts no earlier refresh of this data_dir
  embedded with the same model — so indexing the same knowledge base for a second database (moving
  from SQLite to PostgreSQL, a test's own database) or putting back an edited document costs no
  model time. After each refresh the document side keeps exactly the new version's chunks, so it
  never grows past the knowledge base. `qiuxue ingest --rebuild` bypasses it (and refills it).

One `.npz` file per embedder and kind, replaced atomically; a damaged file is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ingest.embedders import Embedder

QUERIES, DOCUMENTS = "queries", "documents"


class VectorCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._memory: dict[tuple[str, str], dict[str, np.ndarray]] = {}

    def _file(self, embedder: Embedder, kind: str) -> Path:
        slug = hashlib.sha1(embedder.name.encode()).hexdigest()[:12]
        return self.directory / f"{kind}-{slug}.npz"

    def _load(self, embedder: Embedder, kind: str) -> dict[str, np.ndarray]:
        key = (embedder.name, kind)
        if key not in self._memory:
            stored: dict[str, np.ndarray] = {}
            path = self._file(embedder, kind)
            if path.exists():
                try:
                    with np.load(path, allow_pickle=False) as data:
                        stored = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))
                except (OSError, ValueError, KeyError):
                    stored = {}  # a damaged cache is rebuilt, never trusted
            self._memory[key] = stored
        return self._memory[key]

    def embed(self, embedder: Embedder, texts: list[str], kind: str = QUERIES, *,
              fresh: bool = False, persist: bool = True) -> np.ndarray:
        """Vectors of `texts`, embedding only those not cached (all of them when `fresh`).

        `persist=False` keeps new vectors in memory until `save`/`retain` (a refresh saves once).
        """
        missing = self.missing(embedder, texts, kind, fresh=fresh)
        if missing:
            embed = embedder.embed_queries if kind == QUERIES else embedder.embed_documents
            self.put(embedder, kind, missing, embed(missing))
            if persist:
                self.save(embedder, kind)
        return self.vectors(embedder, texts, kind)

    def missing(self, embedder: Embedder, texts: Iterable[str], kind: str, *, fresh: bool = False) -> list[str]:
        """The distinct `texts` (first-seen order) without a cached vector; all of them when `fresh`."""
        known = self._load(embedder, kind)
        unique = list(dict.fromkeys(texts))
        return unique if fresh else [t for t in unique if t not in known]

    def put(self, embedder: Embedder, kind: str, texts: list[str], vectors: np.ndarray) -> None:
        """Remember `vectors` for `texts` in memory (written by `save`/`retain`)."""
        known = self._load(embedder, kind)
        for text, vec in zip(texts, vectors, strict=True):
            known[text] = vec

    def vectors(self, embedder: Embedder, texts: list[str], kind: str) -> np.ndarray:
        """The cached vectors of `texts`, in order (each must be cached)."""
        if not texts:
            return np.zeros((0, embedder.dim), dtype=np.float32)
        known = self._load(embedder, kind)
        return np.stack([known[t] for t in texts]).astype(np.float32, copy=False)

    def embed_queries(self, embedder: Embedder, texts: list[str]) -> np.ndarray:
        return self.embed(embedder, texts, QUERIES)

    def retain(self, embedder: Embedder, kind: str, texts: Iterable[str]) -> None:
        """Keep only the vectors of `texts` and write the cache."""
        keep = set(texts)
        known = self._load(embedder, kind)
        for text in [t for t in known if t not in keep]:
            del known[text]
        self.save(embedder, kind)

    def save(self, embedder: Embedder, kind: str) -> None:
        known = self._load(embedder, kind)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._file(embedder, kind)
        tmp = path.with_suffix(".tmp.npz")
        if known:
            np.savez(tmp, texts=np.array(list(known)), vectors=np.stack(list(known.values())))
            os.replace(tmp, path)  # atomic: a crash never leaves a half-written cache
        else:
            path.unlink(missing_ok=True)
