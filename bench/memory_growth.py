"""What grows in a serving process: tracemalloc snapshots diffed in-process, with RSS, over many distinct questions.

    python bench/memory_growth.py --data-dir DIR [--questions 3000] [--every 500] [--concurrency 4] [--top 12]
                                   [--frames 1] [--arenas 2] [--trim-seconds 60]

Runs the serving core in this process — the hub with the web chat channel, on `DIR`'s live index and
SQLite — and feeds it distinct questions (an eval question with a running number appended) from ever new
workers (a new one every 3 messages), `--concurrency` at a time, each message stored in the inbox,
handled, delivered and read back as the web page does. After a warm-up of `--every` questions (not
traced), tracemalloc is started and a snapshot taken every `--every` questions; printed per checkpoint:
RSS, Python memory traced, and the lines whose allocations grew most since the first traced snapshot.
Also the sizes of the process's known per-worker structures (hub, query-vector LRU), so a
structure that grows with workers shows by name, and native memory the tracer cannot see (SQLite's, and
what malloc keeps after it was freed). `--arenas 0 --trim-seconds 0` measures without `common/malloc.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import linecache
import os
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

from soak_bench import questions, rss_mb

ROOT = Path(__file__).resolve().parent.parent
SKIP = ("tracemalloc", "linecache", "<frozen importlib")


def native_mb() -> dict[str, float]:
    """Native memory the Python tracer does not see: SQLite's own allocator (every connection's page cache and
    statements) and glibc malloc's heap — in use, and free but kept (fragmentation)."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError, AttributeError):
        sqlite = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
        sqlite.sqlite3_memory_used.restype = ctypes.c_int64
        out["sqlite MB"] = round(sqlite.sqlite3_memory_used() / 2**20, 1)
    with contextlib.suppress(OSError, AttributeError):
        class MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                               "fsmblks", "uordblks", "fordblks", "keepcost")]

        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
        out["malloc in use MB"] = round((info.uordblks + info.hblkhd) / 2**20, 1)
        out["malloc free kept MB"] = round(info.fordblks / 2**20, 1)
    return out


def structure_sizes(hub: Any) -> dict[str, int]:
    """Entry counts of the structures a serving process keeps between messages (the flood limit's window is on the
    conversation row, not in memory)."""
    dialogue = hub.dialogue
    sizes = {"hub._busy": len(hub._busy), "hub._handled": len(hub._handled), "hub._fresh": len(hub._fresh),
             "gc objects": len(gc.get_objects())}
    snap = dialogue.answerer.knowledge.current()
    if snap is not None and snap.query_vectors is not None:
        sizes["query-vector LRU"] = len(snap.query_vectors)
    return sizes


def growth(first: tracemalloc.Snapshot, now: tracemalloc.Snapshot, top: int, frames: int) -> list[str]:
    filters = [tracemalloc.Filter(False, f"*{name}*") for name in SKIP]
    stats = now.filter_traces(filters).compare_to(first.filter_traces(filters), "traceback" if frames > 1 else "lineno")
    lines = []
    for stat in stats[:top]:
        frames = [f for f in stat.traceback if "site-packages" not in f.filename or f is stat.traceback[-1]]
        where = " ← ".join(f"{Path(f.filename).name}:{f.lineno}" for f in list(reversed(frames))[:4])
        code = linecache.getline(stat.traceback[-1].filename, stat.traceback[-1].lineno).strip()[:70]
        lines.append(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {where}  | {code}")
    return lines


async def feed(hub: Any, web: Any, texts: list[str], first: int, count: int, concurrency: int) -> int:
    """Messages `first` … `first + count - 1`, `concurrency` phones at a time, each a new worker every 3
    messages and waiting for its reply on its page; the next message number."""
    from bot.core.messages import Incoming

    numbers = iter(range(first, first + count))

    async def phone() -> None:
        user, said = uuid.uuid4().hex, 0
        for n in numbers:
            if said == 3:
                user, said = uuid.uuid4().hex, 0
            said += 1
            before = len(await asyncio.to_thread(web._sent, user, 0))
            await hub.receive(Incoming("web", user, f"{texts[n % len(texts)]} {n}"), f"{user}:{n}")
            deadline = time.monotonic() + 60
            while len(await asyncio.to_thread(web._sent, user, 0)) <= before:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no reply to message {n}")
                await asyncio.sleep(0.02)

    await asyncio.gather(*(phone() for _ in range(concurrency)))
    return first + count


async def run(args: argparse.Namespace) -> None:
    from bot.channels import web
    from bot.core.dialogue import Dialogue
    from bot.core.hub import Hub
    from bot.server import trim_every
    from common.settings import load_config

    cfg = load_config()
    hub = Hub(Dialogue(cfg))
    channel = web.create(cfg, hub)[0]
    await hub.start()
    trimming = asyncio.create_task(trim_every(args.trim_seconds))  # as `qiuxue serve` does
    texts = questions()
    try:
        print(f"warm-up: {args.every} questions (not traced)", flush=True)
        n = await feed(hub, channel, texts, 0, args.every, args.concurrency)
        gc.collect()
        tracemalloc.start(args.frames)
        first = tracemalloc.take_snapshot()
        rss0, started = rss_mb(os.getpid()), time.monotonic()
        print(f"traced from here: RSS {rss0:.1f} MB, sizes {structure_sizes(hub)}, native {native_mb()}", flush=True)
        done = 0
        while done < args.questions:
            n = await feed(hub, channel, texts, n, args.every, args.concurrency)
            done += args.every
            gc.collect()
            now = tracemalloc.take_snapshot()
            traced, _peak = tracemalloc.get_traced_memory()
            print(f"\nafter {done} traced questions ({time.monotonic() - started:.0f} s): RSS {rss_mb(os.getpid()):.1f} MB "
                  f"(+{rss_mb(os.getpid()) - rss0:.1f}), Python traced {traced / 2**20:.1f} MB, "
                  f"sizes {structure_sizes(hub)}, native {native_mb()}", flush=True)
            print("\n".join(growth(first, now, args.top, args.frames)), flush=True)
    finally:
        trimming.cancel()
        await hub.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a data_dir with a live index (its database grows)")
    parser.add_argument("--questions", type=int, default=3000, help="traced questions")
    parser.add_argument("--every", type=int, default=500, help="questions between snapshots (and the warm-up)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--frames", type=int, default=1, help="stack frames per allocation (more: slower)")
    parser.add_argument("--arenas", type=int, default=2, help="server.malloc_arenas (0: glibc's default)")
    parser.add_argument("--trim-seconds", type=float, default=60, help="server.malloc_trim_seconds (0: never)")
    args = parser.parse_args()
    os.environ["QIUXUE__DATA_DIR"] = str(args.data_dir)
    os.environ.setdefault("QIUXUE__CHAT__RATE_LIMIT_MESSAGES", "1000")
    os.environ.setdefault("QIUXUE__DELIVERY__POLL_SECONDS", "0.05")
    sys.path.insert(0, str(ROOT))
    from common import malloc

    print(f"malloc arenas capped at {args.arenas}: {malloc.cap_arenas(args.arenas)}; trimmed every "
          f"{args.trim_seconds} s", flush=True)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
