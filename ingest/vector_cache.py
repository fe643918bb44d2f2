"""A small on-disk cache of query-side vectors (FAQ phrasings), keyed by embedder and text.

Loading a new index version re-embeds only phrasings it has not seen before.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ingest.embedders import Embedder


class VectorCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._memory: dict[str, dict[str, np.ndarray]] = {}

    def _file(self, embedder: Embedder) -> Path:
        slug = hashlib.sha1(embedder.name.encode()).hexdigest()[:12]
        return self.directory / f"queries-{slug}.npz"

    def _load(self, embedder: Embedder) -> dict[str, np.ndarray]:
        if embedder.name not in self._memory:
            stored: dict[str, np.ndarray] = {}
            path = self._file(embedder)
            if path.exists():
                try:
                    with np.load(path, allow_pickle=False) as data:
                        stored = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))
                except (OSError, ValueError, KeyError):
                    stored = {}  # a damaged cache is rebuilt, never trusted
            self._memory[embedder.name] = stored
        return self._memory[embedder.name]

    def embed_queries(self, embedder: Embedder, texts: list[str]) -> np.ndarray:
        known = self._load(embedder)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            for text, vec in zip(missing, embedder.embed_queries(missing), strict=True):
                known[text] = vec
            self._save(embedder, known)
        if not texts:
            return np.zeros((0, embedder.dim), dtype=np.float32)
        return np.stack([known[t] for t in texts]).astype(np.float32)

    def _save(self, embedder: Embedder, known: dict[str, np.ndarray]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._file(embedder)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, texts=np.array(list(known)), vectors=np.stack(list(known.values())))
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written cache
