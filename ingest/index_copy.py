"""The served copy of an index version: its chunks and vectors in one file, read without Chroma.

A version's collection never changes once built (a refresh builds a new version beside it), so the
first process that reads a version from Chroma — the smoke check of `qiuxue ingest`, or a bot — saves
what it read as `<data_dir>/served/<version>.npz` (vectors as float32, chunks as JSON), written to a
temporary name and renamed, and beside it the chunks' search tokens for BM25 (keyed by the tokenizer's
fingerprint: a changed user dictionary tokenises afresh). A bot starting later, or switching to that version, loads the file: no
Chroma import, no Chroma round trip. Chroma stays the store: a missing or unreadable copy (or one
for another collection or embedder) is simply read from Chroma again. The newest `KEEP` copies are kept.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ingest.stored import StoredChunk

log = logging.getLogger(__name__)
KEEP = 6  # copies kept (index.keep_versions plus candidates being smoke-checked)


def copy_path(directory: Path, version: str) -> Path:
    return directory / f"{version}.npz"


def load(directory: Path, version: str, collection: str, embedder: str) -> tuple[list[StoredChunk], np.ndarray] | None:
    """The version's chunks and vectors from its copy, or None (no copy, unreadable, or not this collection)."""
    path = copy_path(directory, version)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            head: dict[str, Any] = json.loads(bytes(data["head"]).decode("utf-8"))
            if head.get("collection") != collection or head.get("embedder") != embedder:
                return None
            rows = json.loads(bytes(data["chunks"]).decode("utf-8"))
            vectors = np.asarray(data["vectors"], dtype=np.float32)
    except (OSError, ValueError, KeyError) as exc:  # a torn or foreign file: Chroma has the truth
        log.warning("served copy %s unreadable (%s); reading the index", path.name, exc)
        return None
    chunks = [StoredChunk(cid, text, meta) for cid, text, meta in rows]
    return (chunks, vectors) if len(chunks) == len(vectors) else None


def tokens_path(directory: Path, version: str, tokenizer: str) -> Path:
    return directory / f"{version}.tokens-{tokenizer}.json"


def load_tokens(directory: Path, version: str, tokenizer: str, count: int) -> list[list[str]] | None:
    """The chunks' search tokens saved for this version and tokenizer fingerprint, or None."""
    try:
        tokens = json.loads(tokens_path(directory, version, tokenizer).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return tokens if isinstance(tokens, list) and len(tokens) == count else None


def save_tokens(directory: Path, version: str, tokenizer: str, tokens: list[list[str]]) -> None:
    """Save the chunks' search tokens (atomically); never fails the caller."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{version}.{os.getpid()}.tokens.tmp"
        tmp.write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, tokens_path(directory, version, tokenizer))
        for old in sorted((p for p in directory.glob("*.json") if not p.name.startswith(".")),
                          key=lambda p: p.stat().st_mtime, reverse=True)[KEEP:]:
            old.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not save the tokens of %s: %s", version, exc)


def save(directory: Path, version: str, collection: str, embedder: str, chunks: list[StoredChunk],
         vectors: np.ndarray) -> None:
    """Write the copy atomically; then drop the oldest copies beyond KEEP. Never fails the caller."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        head = json.dumps({"collection": collection, "embedder": embedder}).encode("utf-8")
        rows = json.dumps([[c.chunk_id, c.search_text, c.meta] for c in chunks], ensure_ascii=False).encode("utf-8")
        tmp = directory / f".{version}.{os.getpid()}.tmp.npz"
        np.savez(tmp, head=np.frombuffer(head, dtype=np.uint8), chunks=np.frombuffer(rows, dtype=np.uint8),
                 vectors=np.asarray(vectors, dtype=np.float32))
        os.replace(tmp, copy_path(directory, version))
        copies = sorted((p for p in directory.glob("*.npz") if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in copies[KEEP:]:
            old.unlink(missing_ok=True)
    except OSError as exc:  # a read-only or full disk costs start-up time, not answers
        log.warning("could not save the served copy of %s: %s", version, exc)
