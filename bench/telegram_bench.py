"""Telegram load benchmark: N simulated workers talking at once through the fake Bot API server.

    python bench/telegram_bench.py [--workers 100 500] [--messages 4]

Each simulated worker (a thread, like a phone) sends /start and then questions from the
evaluation set, waiting for the bot's reply before its next message. The real
python-telegram-bot Application long-polls the fake server on 127.0.0.1 and runs the dialogue
core (offline answering, SQLite by default or the configured database). Reports messages/s,
reply latency p50/p95 (send → first reply) and the process's peak memory. The bot, the fake
server and the simulated phones share this one 2-core machine, so the numbers are conservative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes.telegram_server import FakeBotApi  # noqa: E402
from report import timed_threads  # noqa: E402

from bot.channels import telegram  # noqa: E402
from bot.core.dialogue import Dialogue  # noqa: E402
from bot.core.hub import Hub  # noqa: E402
from bot.evaluation import DEFAULT_SET, load_items  # noqa: E402
from common.settings import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456789:AAFakeTokenForBenchmarks_0123456789ab"
FIRST_USER = 9_000_000


class ReplyWatch:
    """Per-chat events set when the bot sends there (one lock-free wait per phone, not a scan)."""

    def __init__(self, fake: FakeBotApi) -> None:
        self.events: dict[str, threading.Event] = {}
        original = fake._record

        def record(method: str, message: dict, params: dict) -> None:
            original(method, message, params)
            event = self.events.get(str(message["chat"]["id"]))
            if event is not None:
                event.set()

        fake._record = record  # type: ignore[method-assign]

    def expect(self, chat_id: int) -> threading.Event:
        event = self.events[str(chat_id)] = threading.Event()
        return event


def simulate(fake: FakeBotApi, watch: ReplyWatch, n_workers: int, n_messages: int, questions: list[str],
             seed: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    rng = random.Random(seed)
    scripts = [["/start", *rng.sample(questions, n_messages - 1)] for _ in range(n_workers)]

    def phone(n: int) -> None:
        user = FIRST_USER + seed * 10_000 + n
        for text in scripts[n]:
            replied = watch.expect(user)
            start = time.perf_counter()
            fake.send_text(user, text)
            if not replied.wait(timeout=120):
                with lock:
                    errors.append(f"{user}: no reply to {text!r}")
                return
            with lock:
                latencies.append(time.perf_counter() - start)

    elapsed = timed_threads(phone, n_workers)
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return {"workers": n_workers, "messages": len(lat), "errors": len(errors), "seconds": round(elapsed, 1),
            "messages_per_s": round(len(lat) / elapsed, 1), "p50_ms": round(pct(0.50)), "p95_ms": round(pct(0.95)),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


async def run(worker_counts: list[int], n_messages: int) -> list[dict]:
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    questions = [i.question for i in load_items(ROOT / DEFAULT_SET) if i.expect and not i.region]
    results = []
    with FakeBotApi() as fake:
        watch = ReplyWatch(fake)
        cfg = load_config(environ={**os.environ, "QIUXUE__TELEGRAM__BASE_URL": f"{fake.base_url}/bot",
                                   "QIUXUE__CHAT__RATE_LIMIT_MESSAGES": "1000",
                                   "QIUXUE__TELEGRAM__POLL_TIMEOUT_SECONDS": "1"})
        dialogue = Dialogue(cfg)
        hub = Hub(dialogue)  # the real serving path: inbox, dialogue, outbox, delivery
        telegram.create(cfg, hub, TOKEN)
        await hub.start()
        try:
            for seed, n in enumerate(worker_counts, 1):
                results.append(await asyncio.to_thread(simulate, fake, watch, n, n_messages, questions, seed))
        finally:
            await hub.stop()
        for seed, n in enumerate(worker_counts, 1):  # leave no benchmark conversations behind
            for k in range(n):
                dialogue.store.forget("telegram", str(FIRST_USER + seed * 10_000 + k))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--messages", type=int, default=4, help="messages per worker (the first is /start)")
    args = parser.parse_args()
    results = asyncio.run(run(args.workers, args.messages))
    print("| simulated workers | messages | errors | seconds | messages/s | reply p50 ms | reply p95 ms | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['workers']} | {r['messages']} | {r['errors']} | {r['seconds']} | {r['messages_per_s']} | "
              f"{r['p50_ms']} | {r['p95_ms']} | {r['peak_rss_mb']} |")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "telegram.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
