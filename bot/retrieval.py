"""Hybrid retrieval over the live index version: BM25 on jieba tokens + dense vectors, fused by RRF.

`LiveKnowledge` holds a loaded snapshot of the live version and swaps in a new one, without a
restart, when `qiuxue ingest` or `qiuxue kb rollback` moves the live pointer. FAQ phrasings are
ranked as a third list, so a curated answer wins when a worker's wording is close to one of them.

Chroma is the store; a question never queries it. A snapshot holds the version's chunk vectors as a
matrix (read once at load) and ranks them exactly (cosine = dot product of normalised vectors, as
the collection's cosine space: Chroma's distance is 1 − this), plus a BM25 inverted index, region
codes for the place filter, the FAQ phrasing rows of each topic (`bot/topics.py`), and the query-vector
cache (`bot/query_vectors.py`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from bot.lexical import Bm25Index
from bot.query_vectors import QueryVectors
from bot.regions import NATIONAL
from bot.text import Tokenizer
from bot.topics import rows_by_topic
from common.db import open_database
from common.settings import Config
from ingest import index_copy
from ingest.embedders import Embedder, embedder_from_name
from ingest.stored import StoredChunk
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
    """One index version, loaded: chunks and their vectors, BM25, the FAQ phrasing vectors."""

    version: str
    embedder: Embedder
    chunks: list[StoredChunk]
    collection: object  # the Chroma collection if this process read it (None: loaded from the served copy)
    bm25: Bm25Index | None
    vocabulary: set[str]
    faq_rows: list[tuple[int, str]]  # (chunk index, phrasing)
    faq_vectors: np.ndarray
    # place → the document regions that state its rules (广州 → {广州}; 青岛 → {山东} via `covers`)
    covered: dict[str, set[str]] = field(default_factory=dict)
    titles: dict[str, dict] = field(default_factory=dict)
    vectors: np.ndarray | None = None  # chunk vectors, row i = chunks[i] (L2-normalised)
    query_vectors: QueryVectors | None = None
    region_names: dict[str, int] = field(init=False)  # region → code
    region_codes: np.ndarray = field(init=False)  # chunk i's region code
    faq_chunk_of: np.ndarray = field(init=False)  # chunk index of each FAQ phrasing row
    faq_topic_rows: dict[str, np.ndarray] = field(init=False)  # topic → FAQ phrasing rows of its entries

    def __post_init__(self) -> None:
        self.region_names = {}
        self.region_codes = np.array([self.region_names.setdefault(str(c.meta.get("region", NATIONAL)),
                                                                   len(self.region_names)) for c in self.chunks],
                                     dtype=np.int32)
        self.faq_chunk_of = np.array([i for i, _ in self.faq_rows], dtype=np.intp)
        self.faq_topic_rows = rows_by_topic([self.chunks[i].meta.get("topics") or [] for i, _ in self.faq_rows])

    def query_vector(self, text: str) -> np.ndarray:
        """The question's embedding: cached or seeded if this text was embedded before."""
        if self.query_vectors is None:
            return self.embedder.embed_queries([text])[0]
        return self.query_vectors.get(text)

    def allowed_mask(self, allowed: set[str] | None) -> np.ndarray:
        """Which chunks lie in the `allowed` regions (None: all)."""
        if allowed is None:
            return np.ones(len(self.chunks), dtype=bool)
        wanted = [self.region_names[r] for r in allowed if r in self.region_names]
        return np.isin(self.region_codes, wanted)


def load_snapshot(cfg: Config, tokenizer: Tokenizer, cache: VectorCache,
                  embedder: Embedder | None = None) -> Snapshot | None:
    live = live_version(open_database(cfg))
    return None if live is None else snapshot_of(cfg, live, tokenizer, cache, embedder)


def snapshot_of(cfg: Config, live: KbVersion, tokenizer: Tokenizer, cache: VectorCache,
                embedder: Embedder | None = None) -> Snapshot:
    """One version (live, or a candidate being smoke-checked), loaded as the bot serves it."""
    embedder = embedder or embedder_from_name(live.embedder, threads=cfg.embedding.query_threads)
    if embedder.name != live.embedder:
        raise RuntimeError(f"index {live.version} was built with {live.embedder}, not {embedder.name}")
    served = cfg.data_path / "served"
    copy = index_copy.load(served, live.version, live.collection, live.embedder)
    collection = None
    if copy is None:
        collection, chunks, vectors = _read_index(cfg, live, embedder)
        index_copy.save(served, live.version, live.collection, live.embedder, chunks, vectors)
    else:
        chunks, vectors = copy
    corpus = index_copy.load_tokens(served, live.version, tokenizer.fingerprint, len(chunks))
    if corpus is None:
        corpus = [tokenizer.tokens(c.search_text) for c in chunks]
        index_copy.save_tokens(served, live.version, tokenizer.fingerprint, corpus)
    bm25 = Bm25Index(corpus) if chunks else None
    faq_rows = [(i, p) for i, c in enumerate(chunks) if c.meta.get("kind") == "faq"
                for p in dict.fromkeys([str(c.meta.get("question", "")), *c.meta.get("phrasings", [])]) if p]
    faq_texts = [p for _, p in faq_rows]
    faq_vectors = cache.embed_queries(embedder, faq_texts)
    query_vectors = QueryVectors(lambda texts: embedder.embed_queries(texts), cfg.retrieval.query_cache_size,
                                 faq_texts, faq_vectors)  # late-bound: a profiler may wrap embed_queries
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
                    faq_rows, faq_vectors, covered, titles, _unit_rows(vectors), query_vectors)


def _read_index(cfg: Config, live: KbVersion, embedder: Embedder) -> tuple[object, list[StoredChunk], np.ndarray]:
    """The version's collection, chunks and vectors, read from Chroma."""
    from ingest import index as kb_index  # lazy: importing chromadb is most of a bot's start-up

    collection = kb_index.open_collection(kb_index.chroma_client(cfg), live.collection, embedder)
    chunks, vectors = kb_index.read_chunks(collection, with_vectors=True)
    return collection, chunks, vectors if vectors is not None else np.zeros((0, embedder.dim), np.float32)


def _unit_rows(vectors: np.ndarray | None) -> np.ndarray | None:
    """Rows scaled to length 1 (the stored vectors already are; this guards against drift)."""
    if vectors is None or not len(vectors):
        return vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


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

    def current(self, fresh: bool = False) -> Snapshot | None:
        """The live snapshot; `fresh` looks for a newer live version now rather than at the next check."""
        now = time.monotonic()
        if not fresh and self._snapshot is not None and now - self._checked < self._interval:
            return self._snapshot
        with self._lock:
            self._checked = now
            live = live_version(self._sessions)
            if live is None:
                self._snapshot = None
            elif self._snapshot is None or self._snapshot.version != live.version:
                log.info("loading index version %s", live.version)
                snap = load_snapshot(self.cfg, self.tokenizer, self._cache, self._embedder)
                if snap is not None:  # warm the model (its pages, its threads) before a worker waits on it
                    snap.query_vector(self.cfg.index.probe_query)
                self._snapshot = snap
        return self._snapshot


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first (ties: lower index first, as a stable sort)."""
    if k < len(scores):
        part = np.argpartition(-scores, k - 1)[:k]
        cut = scores[part].min()
        candidates = np.flatnonzero(scores >= cut)  # every tie at the cut, so the order is exact
        return candidates[np.argsort(-scores[candidates], kind="stable")][:k]
    return np.argsort(-scores, kind="stable")[:k]


def bm25_search(snap: Snapshot, tokens: list[str], allowed: set[str] | None, k: int) -> list[tuple[int, float]]:
    if snap.bm25 is None or not tokens:
        return []
    scores = snap.bm25.scores(tokens)
    scores[~snap.allowed_mask(allowed)] = -np.inf
    order = _top(scores, k)
    return [(int(i), float(scores[i])) for i in order if scores[i] > 0]


def dense_search(snap: Snapshot, query_vec: np.ndarray, allowed: set[str] | None, k: int) -> list[tuple[int, float]]:
    """The k chunks closest to the query (cosine similarity) within the allowed regions, exactly."""
    if not snap.chunks or snap.vectors is None:
        return []
    mask = snap.allowed_mask(allowed) if allowed else np.ones(len(snap.chunks), dtype=bool)
    rows = np.flatnonzero(mask)
    if not len(rows):
        return []
    sims = snap.vectors[rows] @ np.asarray(query_vec, dtype=np.float32)
    order = _top(sims, min(k, len(rows)))
    return [(int(rows[j]), float(sims[j])) for j in order]


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
    chunk_of = snap.faq_chunk_of
    rows = np.flatnonzero(snap.allowed_mask(allowed if allowed is not None else {NATIONAL})[chunk_of])
    if not len(rows):
        return []
    by_sim = rows[np.argsort(-sims[rows], kind="stable")]  # best phrasing first
    _, first = np.unique(chunk_of[by_sim], return_index=True)  # each chunk's best phrasing
    best = by_sim[np.sort(first)][:k]
    return [(int(chunk_of[row]), float(sims[row])) for row in best]


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
