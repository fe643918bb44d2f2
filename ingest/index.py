"""The index format, in one place: Chroma client, collection names, metadata keys, embedder identity.

`ingest/` writes through this module and the answerer reads through it. Chroma is persistent on
disk under data_dir by default, or a Chroma server (`index.mode: http`). Every collection gets
our own embedding function: Chroma's default one (which downloads a model) is never used.

A Chroma server that cannot be reached (stopped, restarting, network) is one exception,
`IndexUnavailable`, raised where the index is opened or queried; the dialogue core turns it into
"temporarily unavailable, or ask a person" and tries again on the next question.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any, cast

import chromadb
import httpx
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.config import Settings

from common.settings import Config
from ingest.documents import Chunk
from ingest.embedders import Embedder, embedder_from_name
from ingest.stored import LIST_KEYS, StoredChunk, from_chroma_meta

__all__ = ["LIST_KEYS", "StoredChunk", "add_chunks", "chroma_client", "collection_name", "create_collection",
           "drop_collection", "from_chroma_meta", "open_collection", "read_chunks", "to_chroma_meta"]
SCALAR_TYPES = (str, int, float, bool)


class OwnEmbeddingFunction(EmbeddingFunction[Documents]):
    """Wraps our Embedder so Chroma never falls back to its downloading default."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002  (Chroma's signature)
        return list(self._embedder.embed_documents(list(input)))

    def embed_query(self, input: Documents) -> Embeddings:  # noqa: A002
        return list(self._embedder.embed_queries(list(input)))

    @staticmethod
    def name() -> str:
        return "qiuxue"

    def get_config(self) -> dict[str, Any]:
        return {"embedder": self._embedder.name}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> OwnEmbeddingFunction:
        return OwnEmbeddingFunction(embedder_from_name(str(config["embedder"])))


class IndexUnavailable(RuntimeError):
    """The index cannot be reached now (a Chroma server stopped or restarting); a later try may work."""


UNREACHABLE = (httpx.TransportError, ConnectionError)  # what a stopped Chroma server raises in its client
HTTP_API = "chromadb.api.fastapi.FastAPI"  # the client implementation that talks to a Chroma server


class ServedCollection:
    """A collection on a Chroma server: every call raises `IndexUnavailable` when the server cannot be reached."""

    def __init__(self, inner: Collection, where: str) -> None:
        self._inner, self._where = inner, where

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except UNREACHABLE as exc:
                raise IndexUnavailable(f"{self._where}: {name}: {type(exc).__name__}: {exc}") from exc
        return cast(Callable[..., Any], call)


def chroma_client(cfg: Config) -> ClientAPI:
    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if cfg.index.mode == "http":
        where = f"Chroma server {cfg.index.host}:{cfg.index.port}"
        try:  # the client says hello to the server as it is made: a ValueError when nobody answers
            return chromadb.HttpClient(host=cfg.index.host, port=cfg.index.port, settings=settings)
        except (*UNREACHABLE, ValueError) as exc:
            raise IndexUnavailable(f"{where}: {exc}") from exc
    if cfg.index.mode != "persistent":
        raise ValueError(f"index.mode must be persistent or http, not {cfg.index.mode!r}")
    path = cfg.data_path / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=settings)


def collection_name(cfg: Config, version: str) -> str:
    return f"{cfg.index.collection_prefix}_{version}"


def create_collection(client: ClientAPI, name: str, embedder: Embedder) -> Collection:
    return client.create_collection(
        name, embedding_function=OwnEmbeddingFunction(embedder),
        configuration={"hnsw": {"space": "cosine"}}, metadata={"embedder": embedder.name},
    )


def open_collection(client: ClientAPI, name: str, embedder: Embedder) -> Collection:
    """The collection; on a Chroma server, one whose calls raise `IndexUnavailable` if the server goes away."""
    try:
        collection = client.get_collection(name, embedding_function=OwnEmbeddingFunction(embedder))
    except UNREACHABLE as exc:
        raise IndexUnavailable(f"{name}: {type(exc).__name__}: {exc}") from exc
    if client.get_settings().chroma_api_impl != HTTP_API:
        return collection
    return cast(Collection, ServedCollection(collection, name))


def drop_collection(client: ClientAPI, name: str) -> None:
    with contextlib.suppress(Exception):  # already gone (e.g. a crashed build never created it)
        client.delete_collection(name)


def to_chroma_meta(chunk: Chunk) -> dict[str, Any]:
    """Chunk metadata as Chroma scalars (lists → JSON), plus the display text."""
    meta: dict[str, Any] = {}
    for key, value in chunk.meta.items():
        if value is None:
            continue
        if isinstance(value, list | dict):
            meta[key] = json.dumps(value, ensure_ascii=False)
        elif isinstance(value, SCALAR_TYPES):
            meta[key] = value
        else:
            meta[key] = str(value)
    meta["text"] = chunk.text
    return meta


def add_chunks(collection: Collection, chunks: list[Chunk], vectors: np.ndarray, batch: int = 500) -> None:
    for start in range(0, len(chunks), batch):
        part = chunks[start:start + batch]
        collection.add(
            ids=[c.chunk_id for c in part],
            documents=[c.search_text for c in part],
            metadatas=[to_chroma_meta(c) for c in part],
            embeddings=vectors[start:start + batch],
        )


def read_chunks(collection: Collection, where: dict[str, Any] | None = None,
                with_vectors: bool = False) -> tuple[list[StoredChunk], np.ndarray | None]:
    """Every chunk of a collection (optionally filtered), in a stable order."""
    include = ["documents", "metadatas", *(["embeddings"] if with_vectors else [])]
    got = collection.get(where=where, include=include)  # type: ignore[arg-type]
    order = sorted(range(len(got["ids"])), key=lambda i: got["ids"][i])
    chunks = [StoredChunk(got["ids"][i], got["documents"][i], from_chroma_meta(got["metadatas"][i]))
              for i in order]
    vectors = None
    if with_vectors:
        raw = got["embeddings"]
        vectors = np.asarray(raw, dtype=np.float32)[order] if len(order) else np.zeros((0, 0), np.float32)
    return chunks, vectors
