"""WeChat callback benchmark: signed AES callbacks through the fake WeChat, answered passively or via 客服消息.

    python bench/wechat_bench.py [--messages 200] [--concurrency 1 10 50]

For each concurrency level, that many simulated workers (threads, like phones) post `--messages`
signed, AES-encrypted text callbacks in all — questions from the evaluation set — to the real
`qiuxue serve` app (Starlette under uvicorn, the hub, the WeChat channel, SQLite or the configured
database), each waiting for its answer before the next. The fake checks every passive reply as
WeChat does (MsgSignature, decryption, AppID). Reports, per level: callback → passive reply p50/p95
(the HTTP request's duration), the share answered passively vs through the customer-service API,
callback → answer p95 over all answers (API answers: until the fake received the message), and
doubles or missing answers (both must be 0). Bot, fake and phones share this one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes.wechat_server import FakeWechat  # noqa: E402
from report import report, timed_threads  # noqa: E402
from serving import free_port, running_hub  # noqa: E402

from bot.channels import wechat  # noqa: E402
from bot.evaluation import DEFAULT_SET, load_items  # noqa: E402
from common.settings import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WAIT_FOR_API = 60.0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000) if ordered else float("nan")


def simulate(fake: FakeWechat, url: str, n_messages: int, concurrency: int, questions: list[str],
             level: int) -> dict:
    passive: list[float] = []
    via_api: list[float] = []
    missing: list[str] = []
    lock = threading.Lock()
    users = [f"bench-{level}-{k}-{int(time.time())}" for k in range(concurrency)]
    per_phone = [n_messages // concurrency + (1 if k < n_messages % concurrency else 0) for k in range(concurrency)]

    def phone(k: int) -> None:
        user = users[k]
        for n in range(per_phone[k]):
            before = len(fake.sent_to(user))
            started = time.perf_counter()
            got = fake.post_text(url, user, questions[(k * 7 + n) % len(questions)])
            if got.reply is not None:
                with lock:
                    passive.append(got.seconds)
                continue
            deadline = time.monotonic() + WAIT_FOR_API
            while len(fake.sent_to(user)) <= before and time.monotonic() < deadline:
                time.sleep(0.01)
            with lock:
                if len(fake.sent_to(user)) > before:
                    via_api.append(time.perf_counter() - started)
                else:
                    missing.append(f"{user} #{n} (HTTP {got.status})")

    elapsed = timed_threads(phone, concurrency)
    time.sleep(1.0)  # a second answer to any message would arrive by now
    doubles = sum(max(0, len(fake.passive_to(u)) + len(fake.sent_to(u)) - per_phone[k]) for k, u in enumerate(users))
    answered = len(passive) + len(via_api)
    return {"concurrency": concurrency, "messages": n_messages, "seconds": round(elapsed, 1),
            "passive_p50_ms": pct(passive, 0.5), "passive_p95_ms": pct(passive, 0.95),
            "passive_share": round(len(passive) / max(answered, 1), 3),
            "api_share": round(len(via_api) / max(answered, 1), 3),
            "all_p95_ms": pct(passive + via_api, 0.95), "missing": len(missing), "doubles": doubles,
            "users": users}


async def run(n_messages: int, levels: list[int]) -> list[dict]:
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    questions = [i.question for i in load_items(ROOT / DEFAULT_SET) if i.expect and not i.region]
    results = []
    with FakeWechat(aes=True) as fake:
        cfg = load_config(environ={**os.environ, "QIUXUE__WECHAT__API_BASE_URL": fake.base_url,
                                   "QIUXUE__SERVER__PORT": str(free_port()),
                                   "QIUXUE__CHAT__RATE_LIMIT_MESSAGES": "1000",
                                   "QIUXUE__DELIVERY__POLL_SECONDS": "0.05"})
        async with running_hub(cfg, with_telegram=False, serve_http=True,
                               build=lambda hub: wechat.create(cfg, hub, fake.secrets)) as hub:
            url = f"http://127.0.0.1:{cfg.server.port}{cfg.wechat.path}"
            await asyncio.to_thread(fake.post_text, url, "bench-warm-up", "广东能补多少钱")  # models loaded
            for level, concurrency in enumerate(levels, 1):
                results.append(await asyncio.to_thread(simulate, fake, url, n_messages, concurrency, questions,
                                                       level))
            for user in ["bench-warm-up", *(u for r in results for u in r.pop("users"))]:
                hub.dialogue.store.forget("wechat", user)  # leave no benchmark conversations behind
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200, help="signed AES callbacks per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    args = parser.parse_args()
    results = asyncio.run(run(args.messages, args.concurrency))
    report("wechat", {
        "workers at once": lambda r: r["concurrency"], "callbacks": lambda r: r["messages"],
        "seconds": lambda r: r["seconds"], "passive p50 ms": lambda r: r["passive_p50_ms"],
        "passive p95 ms": lambda r: r["passive_p95_ms"], "passive": lambda r: f"{r['passive_share']:.1%}",
        "via API": lambda r: f"{r['api_share']:.1%}", "all answers p95 ms": lambda r: r["all_p95_ms"],
        "missing": lambda r: r["missing"], "doubles": lambda r: r["doubles"]}, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
