"""Per-question answer cost: `Answerer.ask` over the distinct eval questions, wall and CPU time, by stage.

    python bench/answer_bench.py [--rounds 3] [--limit N] [--warmup N] [--baseline-src DIR] [--json]

The questions are the distinct (question, region) pairs of tests/eval/questions.yaml and frozen.yaml.
One warm-up pass over all of them (or the first `--warmup`) is not timed; then every answerer cache (query embeddings) is
emptied, so the timed passes embed every question afresh: `--rounds` timed passes, each over all
questions with the caches emptied before it (a question that is a FAQ phrasing word for word
uses the vector the index load computed: counted as fresh, and their number printed). A last pass over the same questions with the caches
full is reported separately as "repeat" (what a worker asking a question again costs).

Reported per question: p50/p95 of wall-clock ms (`perf_counter`) and CPU ms (`process_time`, all
threads of the process — the embedder may use two). The machine is shared, so CPU time is the robust
figure. The per-stage table is CPU ms per question (mean and p95) of the functions named in STAGES,
wherever they exist in the code measured (a stage may be nested in another, e.g. tokenising inside
composing; "embed" only counts calls that reach the model).

`--baseline-src DIR` also runs this script against the code in DIR (e.g. `git archive main | tar -x -C
DIR`) in a child process, on the same index and the same questions, and prints both.
The index is the configured data_dir's (`QIUXUE__DATA_DIR` to choose); one is built if it has none.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETS = ("tests/eval/questions.yaml", "tests/eval/frozen.yaml")
# stage name → (module, attribute path) of the function to time; missing ones are skipped
STAGES: dict[str, tuple[str, str]] = {
    "places": ("bot.answering", "resolve_places"),
    "tokenise": ("bot.text", "Tokenizer.tokens"),
    "search (all lists)": ("bot.answering", "search"),
    "bm25": ("bot.retrieval", "bm25_search"),
    "dense": ("bot.retrieval", "dense_search"),
    "faq": ("bot.retrieval", "faq_search"),
    "decision": ("bot.answering", "decide"),
    "compose": ("bot.answering", "Answerer._compose"),
}


class StageClock:
    """CPU seconds spent in each timed function during the current question."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.per_question: dict[str, list[float]] = defaultdict(list)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.current[name] += time.process_time() - start
        return timed

    def install(self) -> None:
        for name, (module_name, attr) in STAGES.items():
            owner: Any = importlib.import_module(module_name)
            *parents, leaf = attr.split(".")
            for p in parents:
                owner = getattr(owner, p)
            if hasattr(owner, leaf):
                setattr(owner, leaf, self.wrap(name, getattr(owner, leaf)))

    def install_embedder(self, embedder: Any) -> None:
        """Time the model itself: the embedder object the snapshot uses."""
        embedder.embed_queries = self.wrap("embed (model)", embedder.embed_queries)

    def end_question(self, keep: bool) -> None:
        if keep:
            for name in {*self.per_question, *self.current}:
                self.per_question[name].append(self.current.get(name, 0.0))
        self.current = defaultdict(float)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else 0.0


def summary(wall: list[float], cpu: list[float]) -> dict[str, float]:
    return {"n": len(wall), "wall_p50_ms": percentile(wall, 50) * 1000, "wall_p95_ms": percentile(wall, 95) * 1000,
            "cpu_p50_ms": percentile(cpu, 50) * 1000, "cpu_p95_ms": percentile(cpu, 95) * 1000,
            "cpu_mean_ms": statistics.fmean(cpu) * 1000 if cpu else 0.0}


def questions() -> list[tuple[str, str | None]]:
    from common.yamlio import read_yaml

    seen: dict[tuple[str, str | None], None] = {}
    for name in SETS:
        for row in read_yaml(ROOT / name):
            seen.setdefault((str(row.get("q") or ""), row.get("region")), None)
    return list(seen)


def clear_caches(answerer: Any) -> None:
    """Empty every per-question cache the answerer has (none in older code)."""
    clear = getattr(answerer, "clear_caches", None)
    if clear is not None:
        clear()


def measure(rounds: int, limit: int = 0, warmup: int = 0) -> dict[str, Any]:
    from bot.answering import Answerer
    from common.db import open_database
    from common.settings import load_config
    from ingest.versions import live_version

    cfg = load_config()
    if live_version(open_database(cfg)) is None:
        from ingest.refresh import refresh

        refresh(cfg, by="answer_bench")
    clock = StageClock()
    clock.install()
    answerer = Answerer(cfg)
    answerer.llm = None
    snap = answerer.knowledge.current()
    assert snap is not None, "no live index"
    clock.install_embedder(snap.embedder)
    items = questions()
    if limit and limit < len(items):  # an evenly spaced subset, the same for every code measured
        items = [items[round(i * len(items) / limit)] for i in range(limit)]
    for q, region in items[:warmup or len(items)]:  # warm-up, not timed
        answerer.ask(q, region)
        clock.end_question(keep=False)
    wall: list[float] = []
    cpu: list[float] = []
    answers: list[str] = []
    seeded_before = _seed_hits(snap)
    for k in range(rounds):
        clear_caches(answerer)
        for q, region in items:
            w0, c0 = time.perf_counter(), time.process_time()
            a = answerer.ask(q, region)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            clock.end_question(keep=True)
            if k == 0:
                answers.append(f"{a.action}\t{a.answer}")
    seeded = (_seed_hits(snap) - seeded_before) // max(rounds, 1)
    stages = {name: {"cpu_mean_ms": statistics.fmean(v) * 1000, "cpu_p95_ms": percentile(v, 95) * 1000}
              for name, v in clock.per_question.items()}
    rwall, rcpu = [], []
    for q, region in items:  # caches full: a question asked again
        w0, c0 = time.perf_counter(), time.process_time()
        answerer.ask(q, region)
        rcpu.append(time.process_time() - c0)
        rwall.append(time.perf_counter() - w0)
        clock.end_question(keep=False)
    return {"questions": len(items), "rounds": rounds, "fresh": summary(wall, cpu), "repeat": summary(rwall, rcpu),
            "stages": stages, "answers": answers,
            "faq_phrasing_hits_per_round": seeded, "load_average_1min": os.getloadavg()[0]}


def _seed_hits(snap: Any) -> int:
    """Questions whose text is a FAQ phrasing: their vector is the index's own (0 in older code)."""
    qv = getattr(snap, "query_vectors", None)
    return int(getattr(qv, "seed_hits", 0))


def child(src: Path, rounds: int, limit: int, warmup: int) -> dict[str, Any]:
    """This script's measurement against the code in `src` (same index via the environment)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    env.setdefault("QIUXUE__DATA_DIR", str(ROOT / "data"))
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--rounds", str(rounds), "--limit", str(limit),
                          "--warmup", str(warmup), "--raw"],
                         env=env, cwd=src, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def print_table(results: dict[str, dict[str, Any]]) -> None:
    first = next(iter(results.values()))
    print(f"{first['questions']} distinct questions × {first['rounds']} timed rounds (caches emptied before each); "
          f"1-min load average {first['load_average_1min']:.1f} on 2 cores")
    for label, r in results.items():
        if r.get("faq_phrasing_hits_per_round"):
            print(f"({label}: {r['faq_phrasing_hits_per_round']} questions per round are a FAQ phrasing word for "
                  "word, embedded at index load: no model call — counted in 'fresh')")
    print("| code | pass | CPU p50 ms | CPU p95 ms | wall p50 ms | wall p95 ms |")
    print("|---|---|---|---|---|---|")
    for label, r in results.items():
        for kind in ("fresh", "repeat"):
            s = r[kind]
            print(f"| {label} | {kind} | {s['cpu_p50_ms']:.2f} | {s['cpu_p95_ms']:.2f} | "
                  f"{s['wall_p50_ms']:.2f} | {s['wall_p95_ms']:.2f} |")
    names = list(dict.fromkeys(n for r in results.values() for n in r["stages"]))
    print("\nCPU ms per question by stage (mean / p95), fresh passes:")
    print("| stage | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for n in names:
        cells = [f"{r['stages'][n]['cpu_mean_ms']:.2f} / {r['stages'][n]['cpu_p95_ms']:.2f}" if n in r["stages"]
                 else "–" for r in results.values()]
        print(f"| {n} | " + " | ".join(cells) + " |")
    if len(results) == 2:
        a, b = (r["answers"] for r in results.values())
        same = sum(x == y for x, y in zip(a, b, strict=True))
        print(f"\nidentical answers (action + text), baseline vs this code: {same}/{len(a)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="an evenly spaced subset of this many questions")
    parser.add_argument("--warmup", type=int, default=0, help="warm up on the first N questions (default: all)")
    parser.add_argument("--baseline-src", type=Path, help="also measure the code in this directory")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)  # child mode: JSON on stdout
    args = parser.parse_args()
    if args.raw:
        print(json.dumps(measure(args.rounds, args.limit, args.warmup), ensure_ascii=False))
        return 0
    results: dict[str, dict[str, Any]] = {}
    if args.baseline_src:
        results["baseline"] = child(args.baseline_src.resolve(), args.rounds, args.limit, args.warmup)
    results["this code"] = child(ROOT, args.rounds, args.limit, args.warmup)
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
    else:
        print_table(results)
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    (ROOT / "bench" / "out" / "answer_bench.json").write_text(json.dumps(results, ensure_ascii=False, indent=1),
                                                              encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
