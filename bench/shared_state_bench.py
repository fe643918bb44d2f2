"""What the cross-process flood limit costs per message: the window on the conversation row (what the bot does)
against the same locked turn without it, and against a Redis sliding window (one pipelined round trip).

    PYTHONPATH=. python bench/shared_state_bench.py [--messages 300] [--redis 127.0.0.1:6379]

Runs on a throw-away PostgreSQL database on 127.0.0.1:5432 (dropped afterwards). Medians in ms per message.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
import uuid
from collections.abc import Callable

import psycopg

from bench.report import report
from bot.core.ratelimit import RateLimiter
from bot.core.store import ConversationStore
from common.db import _sessions_for

ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


def timed(step: Callable[[int], None], n: int) -> float:
    """Median milliseconds of `step(k)` over n calls."""
    times = []
    for k in range(n):
        started = time.perf_counter()
        step(k)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def interleaved(first: Callable[[int], None], second: Callable[[int], None], n: int) -> tuple[float, float]:
    """Medians (ms) of two steps run alternately, so a machine busy with other work slows both alike."""
    a: list[float] = []
    b: list[float] = []
    for k in range(n):
        for step, times in ((first, a), (second, b)):
            started = time.perf_counter()
            step(k)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(a), statistics.median(b)


def turn(store: ConversationStore, limiter: RateLimiter | None) -> Callable[[int], None]:
    """A message's transaction as `Dialogue.turn` makes it: the row locked, a transcript line, commit."""
    def step(k: int) -> None:
        with store.locked("bench", "w1") as (session, conv):
            if limiter is not None:
                _, conv.recent = limiter.admit(conv.recent or [])
            ConversationStore.log(session, conv, "in", f"message {k}")
    return step


def redis_window(address: str) -> Callable[[int], None]:
    """A Redis sorted-set sliding window (trim, add, count, expire), pipelined: one round trip."""
    host, port = address.split(":")
    sock = socket.create_connection((host, int(port)))
    key = f"qiuxue-bench:{uuid.uuid4().hex}"

    def command(*parts: str) -> bytes:
        return f"*{len(parts)}\r\n".encode() + b"".join(f"${len(p.encode())}\r\n{p}\r\n".encode() for p in parts)

    def step(k: int) -> None:
        now = time.time()
        sock.sendall(command("ZREMRANGEBYSCORE", key, "0", str(now - 10)) + command("ZADD", key, str(now), str(k))
                     + command("ZCARD", key) + command("EXPIRE", key, "10"))
        got = b""
        while got.count(b"\r\n") < 4:
            got += sock.recv(4096)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--redis", default="127.0.0.1:6379")
    args = parser.parse_args()
    name = f"qiuxue_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        sessions = _sessions_for(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
        store = ConversationStore(sessions)
        limiter = RateLimiter(8, 10)  # the shipped limit: the stored window holds at most 8 times
        turn(store, None)(0)  # warm up: the conversation exists, the pool is open
        plain_turn, window_turn = turn(store, None), turn(store, limiter)
        without, with_window = interleaved(plain_turn, window_turn, args.messages)  # same load for both
        admit = timed(lambda k: limiter.admit([time.time()] * 8), args.messages)
        redis = timed(redis_window(args.redis), args.messages)
        sessions.kw["bind"].dispose()
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report("shared_state", {
        "turn without limit (ms)": lambda r: f"{r['without']:.2f}",
        "turn with the window on the row (ms)": lambda r: f"{r['with_window']:.2f}",
        "limiter CPU (ms)": lambda r: f"{r['admit']:.4f}",
        "Redis window round trip (ms)": lambda r: f"{r['redis']:.2f}",
    }, [{"without": without, "with_window": with_window, "admit": admit, "redis": redis,
         "messages": args.messages}])


if __name__ == "__main__":
    main()
