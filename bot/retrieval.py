"""Hybrid retrieval over the live index version: BM25 on jieba tokens + dense vectors, fused by RRF.

`LiveKnowledge` holds a loaded snapshot of the live version and swaps in a new one, without a
restart, when `qiuxue ingest` or `qiuxue kb rollback` moves the live pointer. FAQ phrasings are
ranked as a third list, so a curated answer wins when a worker's wording is close to one of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from rank_bm25 import BM25Okapi

from bot.regions import NATIONAL
from bot.text import Tokenizer
from common.db import open_database
from common.settings import Config
from ingest import index as kb_index
from ingest.embedders import Embedder, embedder_from_name
from ingest.index import StoredChunk
from ingest.vector_cache import VectorCache
from ingest.versions import KbVersion, live_version

log = logging.getLogger(__name__)
MODES = ("hybrid", "bm25", "dense")


@dataclass
class Hit:
    chunk: StoredChunk
    score: float  # fused (RRF) score, higher is better
    dense: float = 0.0  # cosine similarity of the query to this chunk (0 if not in the dense list)
    bm25: float = 0.0  # raw BM25 score (0 if not in the BM25 list)
    faq: float = 0.0  # for a FAQ chunk: cosine similarity of its closest phrasing


@dataclass
class Snapshot:
    """One index version, loaded: chunks, BM25, the Chroma collection and FAQ phrasing vectors."""

    version: str
    embedder: Embedder
    chunks: list[StoredChunk]
    collection: object
    bm25: BM25Okapi | None
    vocabulary: set[str]
    faq_rows: list[tuple[int, str]]  # (chunk index, phrasing)
    faq_vectors: np.ndarray
    # place → the document regions that state its rules (广州 → {广州}; 青岛 → {山东} via `covers`)
    covered: dict[str, set[str]] = field(default_factory=dict)
    titles: dict[str, dict] = field(default_factory=dict)


def load_snapshot(cfg: Config, tokenizer: Tokenizer, cache: VectorCache,
                  embedder: Embedder | None = None) -> Snapshot | None:
    live = live_version(open_database(cfg))
    return None if live is None else snapshot_of(cfg, live, tokenizer, cache, embedder)


def snapshot_of(cfg: Config, live: KbVersion, tokenizer: Tokenizer, cache: VectorCache,
                embedder: Embedder | None = None) -> Snapshot:
    """One version (live, or a candidate being smoke-checked), loaded as the bot serves it."""
    embedder = embedder or embedder_from_name(live.embedder)
    if embedder.name != live.embedder:
        raise RuntimeError(f"index {live.version} was built with {live.embedder}, not {embedder.name}")
    collection = kb_index.open_collection(kb_index.chroma_client(cfg), live.collection, embedder)
    chunks, _ = kb_index.read_chunks(collection)
    corpus = [tokenizer.tokens(c.search_text) for c in chunks]
    bm25 = BM25Okapi(corpus) if chunks else None
    faq_rows = [(i, p) for i, c in enumerate(chunks) if c.meta.get("kind") == "faq"
                for p in dict.fromkeys([str(c.meta.get("question", "")), *c.meta.get("phrasings", [])]) if p]
    faq_vectors = cache.embed_queries(embedder, [p for _, p in faq_rows])
    titles = {c.doc_id: {"title": c.meta.get("title", c.doc_id), "title_en": c.meta.get("title_en", ""),
                         "region": c.meta.get("region", ""), "sources": c.meta.get("sources", [])}
              for c in chunks}
    covered: dict[str, set[str]] = {}
    for c in chunks:
        region = str(c.meta.get("region") or "")
        if region and c.meta.get("scope") in ("province", "city"):
            for place in (region, *c.meta.get("covers", [])):
                covered.setdefault(str(place), set()).add(region)
    return Snapshot(live.version, embedder, chunks, collection, bm25, {t for doc in corpus for t in doc},
                    faq_rows, faq_vectors, covered, titles)


class LiveKnowledge:
    """The live snapshot, reloaded when the live version changes (checked at most every N seconds)."""

    def __init__(self, cfg: Config, tokenizer: Tokenizer, embedder: Embedder | None = None) -> None:
        self.cfg, self.tokenizer, self._embedder = cfg, tokenizer, embedder
        self._cache = VectorCache(cfg.data_path / "cache")
        self._sessions = open_database(cfg)
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked = 0.0
        self._interval = cfg.index.reload_check_seconds

    def current(self) -> Snapshot | None:
        now = time.monotonic()
        if self._snapshot is not None and now - self._checked < self._interval:
            return self._snapshot
        with self._lock:
            self._checked = now
            live = live_version(self._sessions)
            if live is None:
                self._snapshot = None
            elif self._snapshot is None or self._snapshot.version != live.version:
                log.info("loading index version %s", live.version)
                self._snapshot = load_snapshot(self.cfg, self.tokenizer, self._cache, self._embedder)
        return self._snapshot


def _allowed_mask(chunks: list[StoredChunk], allowed: set[str] | None) -> np.ndarray:
    if allowed is None:
        return np.ones(len(chunks), dtype=bool)
    return np.array([str(c.meta.get("region", NATIONAL)) in allowed for c in chunks], dtype=bool)


def bm25_search(snap: Snapshot, tokens: list[str], allowed: set[str] | None, k: int) -> list[tuple[int, float]]:
    if snap.bm25 is None or not tokens:
        return []
    scores = snap.bm25.get_scores(tokens)
    scores[~_allowed_mask(snap.chunks, allowed)] = -np.inf
    order = np.argsort(-scores)[:k]
    return [(int(i), float(scores[i])) for i in order if scores[i] > 0]


def dense_search(snap: Snapshot, query_vec: np.ndarray, allowed: set[str] | None, k: int) -> list[tuple[int, float]]:
    if not snap.chunks:
        return []
    where = {"region": {"$in": sorted(allowed)}} if allowed else None
    got = snap.collection.query(query_embeddings=[query_vec], n_results=min(k, len(snap.chunks)),  # type: ignore[attr-defined]
                                where=where, include=["distances"])
    index = {c.chunk_id: i for i, c in enumerate(snap.chunks)}
    return [(index[cid], 1.0 - float(dist)) for cid, dist in zip(got["ids"][0], got["distances"][0], strict=True)
            if cid in index]


def fuse(ranked_lists: Iterable[tuple[list[tuple[int, float]], float]], rrf_k: int) -> dict[int, float]:
    """Weighted reciprocal rank fusion of several (ranked (index, score) list, weight) pairs."""
    fused: dict[int, float] = {}
    for ranked, weight in ranked_lists:
        for rank, (i, _) in enumerate(ranked):
            fused[i] = fused.get(i, 0.0) + weight / (rrf_k + rank + 1)
    return fused


def faq_search(snap: Snapshot, query_vec: np.ndarray, allowed: set[str] | None, k: int) -> list[tuple[int, float]]:
    """FAQ chunks ranked by their closest question or phrasing, within allowed regions.

    With no place known (allowed is None) only national entries qualify: a curated answer for one
    place is never handed to a worker who has not said where they are.
    """
    if not snap.faq_rows:
        return []
    sims = snap.faq_vectors @ query_vec
    regions = allowed if allowed is not None else {NATIONAL}
    best: dict[int, float] = {}
    for row, (i, _) in enumerate(snap.faq_rows):
        if str(snap.chunks[i].meta.get("region", NATIONAL)) in regions and sims[row] > best.get(i, -1.0):
            best[i] = float(sims[row])
    return sorted(best.items(), key=lambda kv: -kv[1])[:k]


def search(snap: Snapshot, tokens: list[str], query_vec: np.ndarray | None, allowed: set[str] | None,
           k: int, mode: str = "hybrid", rrf_k: int = 60, boost_regions: set[str] | None = None,
           boost: float = 0.0, weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> list[Hit]:
    """Top-k chunks for a query, restricted to `allowed` regions (None = all).

    hybrid fuses BM25, dense passages and FAQ phrasings; dense uses the two vector lists; bm25 the
    lexical one; `weights` scale the BM25, dense and FAQ lists. Chunks of `boost_regions` (the worker's own place) get their fused score × (1+boost).
    """
    pool = max(k * 4, 20)
    use_vectors = mode in ("hybrid", "dense") and query_vec is not None
    lexical = bm25_search(snap, tokens, allowed, pool) if mode in ("hybrid", "bm25") else []
    dense = dense_search(snap, query_vec, allowed, pool) if use_vectors else []
    faq = faq_search(snap, query_vec, allowed, pool) if use_vectors else []
    fused = fuse(zip((lexical, dense, faq), weights, strict=True), rrf_k)
    if boost_regions and boost:
        for i in fused:
            if str(snap.chunks[i].meta.get("region", "")) in boost_regions:
                fused[i] *= 1.0 + boost
    dense_of, bm25_of, faq_of = dict(dense), dict(lexical), dict(faq)
    order = sorted(fused, key=lambda i: -fused[i])[:k]
    return [Hit(snap.chunks[i], fused[i], dense_of.get(i, 0.0), bm25_of.get(i, 0.0), faq_of.get(i, 0.0))
            for i in order]
