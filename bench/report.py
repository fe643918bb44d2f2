"""Benchmark helpers: simulated phones as threads, timed; a Markdown table on stdout (for README) and the raw
results in bench/out/<name>.json."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def report(name: str, columns: dict[str, Callable[[dict[str, Any]], object]], results: list[dict[str, Any]]) -> None:
    """Print one table row per result (`columns`: header → cell) and save the results as JSON."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in results:
        print("| " + " | ".join(str(cell(r)) for cell in columns.values()) + " |")
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")


def timed_threads(target: Callable[[int], None], count: int) -> float:
    """Run `target(0) … target(count - 1)` in threads at once; seconds until all finished."""
    threads = [threading.Thread(target=target, args=(k,)) for k in range(count)]
    started = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - started


def ingested_data_dir(target: Path, env: dict[str, str], src: Path, seed_cache: Path | None = None) -> None:
    """An index of the shipped knowledge base in data_dir `target` (`env` points QIUXUE__DATA_DIR there).

    The vector cache of `seed_cache` (a data_dir's `cache/`, e.g. ./data/cache) is copied in first, so
    passages embedded before cost no model time."""
    import shutil
    import subprocess
    import sys

    if seed_cache is not None and seed_cache.is_dir():
        shutil.copytree(seed_cache, target / "cache", dirs_exist_ok=True)
    subprocess.run([sys.executable, "-m", "bot.cli", "ingest", "--by", "bench"], env=env, cwd=src, check=True,
                   stdout=subprocess.DEVNULL)
