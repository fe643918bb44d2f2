"""The answer path's fast structures give the same results as the slow ones, and per-user state and the
process's native heap (malloc arenas, memory freed but kept) stay bounded."""

from __future__ import annotations

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from bot.console.auth import Throttle
from bot.core.ratelimit import KeyedWindows
from bot.lexical import Bm25Index
from bot.query_vectors import QueryVectors
from bot.retrieval import bm25_search, dense_search, faq_search

CORPUS = [["广东", "补贴", "多少", "钱"], ["报名", "材料", "身份证", "身份证"], ["广东", "报名", "时间"], [],
          ["学费", "退", "补贴", "补贴", "补贴"]]


@pytest.mark.parametrize("query", [["广东"], ["补贴", "补贴"], ["报名", "身份证", "不存在"], [], ["不存在"]])
def test_bm25_index_scores_equal_rank_bm25(query: list[str]) -> None:
    assert Bm25Index(CORPUS).scores(query).tolist() == BM25Okapi(CORPUS).get_scores(query).tolist()


class CountingModel:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += texts
        return np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32)


def test_query_vectors_seeded_cached_and_bounded() -> None:
    model = CountingModel()
    seeds = np.array([[9.0, 9.0]], dtype=np.float32)
    qv = QueryVectors(model, size=2, seed_texts=["广东补多少"], seed_vectors=seeds)
    assert qv.get("广东补多少").tolist() == [9.0, 9.0] and model.calls == []  # a FAQ phrasing: no model call
    assert qv.get("a").tolist() == [1.0, 1.0] and qv.get("a").tolist() == [1.0, 1.0]
    assert model.calls == ["a"] and (qv.hits, qv.misses, qv.seed_hits) == (1, 1, 1)
    qv.get("bb")
    qv.get("a")  # "a" is now the most recent, "bb" the oldest
    qv.get("ccc")  # over the bound: "bb" goes
    assert len(qv) == 2
    qv.get("bb")
    assert model.calls == ["a", "bb", "ccc", "bb"]
    qv.clear()
    assert len(qv) == 0 and qv.get("广东补多少").tolist() == [9.0, 9.0]


def test_query_vectors_size_zero_keeps_nothing() -> None:
    model = CountingModel()
    qv = QueryVectors(model, size=0)
    qv.get("a")
    qv.get("a")
    assert len(qv) == 0 and model.calls == ["a", "a"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_forgets_idle_workers() -> None:
    clock = Clock()
    limiter = KeyedWindows(2, 10.0, clock=clock)
    for k in range(1000):
        assert limiter.allow(f"worker-{k}")
        clock.now += 0.1  # 1,000 workers over 100 s, each once
    assert len(limiter) <= 101  # only those of the last 10 s are remembered
    assert limiter.allow("x") and limiter.allow("x") and not limiter.allow("x")  # the limit still holds
    clock.now += 10.5
    assert limiter.allow("x") and len(limiter) == 1


def test_rate_limiter_hard_cap_on_distinct_keys() -> None:
    clock = Clock()
    limiter = KeyedWindows(1, 60.0, clock=clock, max_keys=50)
    for k in range(500):
        limiter.allow(f"w{k}")
    assert len(limiter) == 50
    assert not limiter.allow("w499")  # the most recent keys are the ones kept


def test_console_throttle_is_bounded_too() -> None:
    throttle = Throttle(3)
    assert isinstance(throttle, KeyedWindows) and throttle.window == 60.0 and throttle.max_keys > 0


FRAGMENT = """
import json, os, sys, threading
from common import malloc

def rss_mb():
    return next(int(line.split()[1]) / 1024 for line in open(f"/proc/{os.getpid()}/status") if line.startswith("VmRSS"))

capped = malloc.cap_arenas(int(sys.argv[1]))
start, kept = threading.Barrier(8), []

def work():  # 8 threads at once, each allocating 20 MB in 2 KB blocks and keeping one in 20: scattered free memory
    start.wait()
    blocks = [bytearray(2000) for _ in range(10000)]
    kept.extend(blocks[::20])

threads = [threading.Thread(target=work) for _ in range(8)]
for th in threads:
    th.start()
for th in threads:
    th.join()
before = rss_mb()
print(json.dumps({"capped": capped, "arenas": malloc.arena_count(), "before": before, "trimmed": malloc.trim(),
                  "after": rss_mb()}))
"""


def _fragmented(arenas: int) -> dict[str, float]:
    """A fresh process (the cap must come before its threads) that leaves freed memory scattered over arenas."""
    import json
    import subprocess
    import sys

    from tests.conftest import PROJECT

    out = subprocess.run([sys.executable, "-c", FRAGMENT, str(arenas)], cwd=PROJECT, capture_output=True, text=True,
                         check=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT)})
    return dict(json.loads(out.stdout))


def test_malloc_arenas_are_capped_and_freed_memory_goes_back() -> None:
    """The serving process's native-memory bound (`common/malloc.py`, `server.malloc_*`): threads share at most
    the capped number of arenas, and a trim hands memory freed but kept back to the system."""
    free = _fragmented(0)
    capped = _fragmented(2)
    assert free["arenas"] > 2  # without the cap every thread got an arena of its own
    assert capped["capped"] and capped["arenas"] <= 2
    assert capped["before"] < free["before"]  # fewer arenas: less memory kept after the same work
    for run in (free, capped):  # ~150 MB allocated, ~8 MB still in use: the trim returns most of the rest
        assert run["trimmed"] and run["after"] < run["before"] - 30, run


def test_serve_trims_periodically(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from bot import server
    from common import malloc

    calls: list[float] = []
    monkeypatch.setattr(malloc, "trim", lambda: bool(calls.append(0.0)))

    async def run_for(seconds: float, interval: float) -> None:
        task = asyncio.create_task(server.trim_every(interval))
        await asyncio.sleep(seconds)
        task.cancel()

    asyncio.run(run_for(0.35, 0.05))
    assert len(calls) >= 3
    calls.clear()
    asyncio.run(run_for(0.1, 0))  # 0: never
    assert calls == []


def test_in_memory_dense_search_matches_chroma(answerer, kb_cfg) -> None:  # type: ignore[no-untyped-def]
    """The matrix ranking equals the Chroma collection's own query (same ids, same similarities)."""
    from common.db import open_database
    from ingest import index as kb_index
    from ingest.versions import live_version

    snap = answerer.knowledge.current()
    live = live_version(open_database(kb_cfg))
    collection = kb_index.open_collection(kb_index.chroma_client(kb_cfg), live.collection, snap.embedder)
    regions = {str(c.meta.get("region")) for c in snap.chunks}
    for question in ("广东求学圆梦补贴多少钱", "报名需要什么材料", "how do I apply"):
        vec = snap.embedder.embed_queries([question])[0]
        for allowed in (None, {"全国"}, regions):
            mine = dense_search(snap, vec, allowed, 20)
            where = {"region": {"$in": sorted(allowed)}} if allowed else None
            got = collection.query(query_embeddings=[vec], n_results=min(20, len(snap.chunks)),
                                        where=where, include=["distances"])
            assert [snap.chunks[i].chunk_id for i, _ in mine] == got["ids"][0]
            assert np.allclose([s for _, s in mine], [1 - d for d in got["distances"][0]], atol=1e-5)


def test_vectorised_faq_and_bm25_search_match_the_plain_loops(answerer) -> None:  # type: ignore[no-untyped-def]
    snap = answerer.knowledge.current()
    for question, allowed in (("广东补多少钱", {"全国", "广东"}), ("报名材料", None), ("学费", {"全国"})):
        vec = snap.embedder.embed_queries([question])[0]
        sims = snap.faq_vectors @ vec
        best: dict[int, float] = {}
        for row, (i, _) in enumerate(snap.faq_rows):
            if str(snap.chunks[i].meta.get("region", "全国")) in (allowed or {"全国"}) and sims[row] > best.get(i, -1):
                best[i] = float(sims[row])
        assert faq_search(snap, vec, allowed, 20) == sorted(best.items(), key=lambda kv: -kv[1])[:20]
        tokens = answerer.tokenizer.tokens(question)
        plain = BM25Okapi([answerer.tokenizer.tokens(c.search_text) for c in snap.chunks]).get_scores(tokens)
        mask = np.array([allowed is None or str(c.meta.get("region", "全国")) in allowed for c in snap.chunks])
        plain[~mask] = -np.inf
        expected = [(int(i), float(plain[i])) for i in np.argsort(-plain, kind="stable")[:20] if plain[i] > 0]
        assert bm25_search(snap, tokens, allowed, 20) == expected


def test_served_copy_round_trip_and_refusals(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ingest import index_copy
    from ingest.stored import StoredChunk

    chunks = [StoredChunk("a#0", "广东 补贴", {"doc_id": "a", "region": "广东", "sources": ["x"]}),
              StoredChunk("b#0", "报名", {"doc_id": "b", "region": "全国"})]
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert index_copy.load(tmp_path, "v1", "kb_v1", "m") is None  # no copy yet
    index_copy.save(tmp_path, "v1", "kb_v1", "m", chunks, vectors)
    got = index_copy.load(tmp_path, "v1", "kb_v1", "m")
    assert got is not None and got[0] == chunks and got[1].tolist() == vectors.tolist()
    assert index_copy.load(tmp_path, "v1", "kb_other", "m") is None  # another collection: read Chroma
    assert index_copy.load(tmp_path, "v1", "kb_v1", "other-model") is None
    index_copy.copy_path(tmp_path, "v1").write_bytes(b"torn")
    assert index_copy.load(tmp_path, "v1", "kb_v1", "m") is None
    for k in range(index_copy.KEEP + 3):
        index_copy.save(tmp_path, f"w{k}", "c", "m", chunks, vectors)
    assert len(list(tmp_path.glob("*.npz"))) == index_copy.KEEP
    tokens = [["广东", "补贴"], ["报名"]]
    index_copy.save_tokens(tmp_path, "v1", "tok1", tokens)
    assert index_copy.load_tokens(tmp_path, "v1", "tok1", 2) == tokens
    assert index_copy.load_tokens(tmp_path, "v1", "tok2", 2) is None  # another dictionary: tokenise afresh
    assert index_copy.load_tokens(tmp_path, "v1", "tok1", 3) is None  # not these chunks


def test_a_bot_serves_from_the_copy_without_chroma(answerer, kb_cfg) -> None:  # type: ignore[no-untyped-def]
    """The first load saved the copy; a second load reads it (no collection) and answers the same."""
    from bot.retrieval import load_snapshot
    from ingest.vector_cache import VectorCache

    first = answerer.knowledge.current()
    assert (kb_cfg.data_path / "served" / f"{first.version}.npz").is_file()
    again = load_snapshot(kb_cfg, answerer.tokenizer, VectorCache(kb_cfg.data_path / "cache"))
    assert again is not None and again.collection is None
    assert [c.chunk_id for c in again.chunks] == [c.chunk_id for c in first.chunks]
    assert np.array_equal(again.vectors, first.vectors)
    assert again.vocabulary == first.vocabulary  # BM25 from the saved tokens
    question = answerer.tokenizer.tokens("广东补贴多少钱")
    assert again.bm25.scores(question).tolist() == first.bm25.scores(question).tolist()
