"""Throughput of `qiuxue serve` with N processes: Telegram webhook mode, PostgreSQL, a Chroma server.

    python bench/serve_bench.py [--processes 1 2 3 4] [--workers 200] [--messages 4] [--baseline DIR]

For each process count a fresh PostgreSQL database and the shipped KB (`qiuxue ingest`; the first run
embeds it, later runs reuse its vector cache) in one Chroma server; then `qiuxue serve --workers N`
(real separate processes on one port). `--workers` simulated workers (threads) each send
`--messages` distinct questions (evaluation questions with varied openings: no two alike), one at a
time, each a webhook POST on the phone's own keep-alive connection, waiting for the reply the
fake Bot API (tests/fakes/telegram_server.py, in this process) receives before the next.

Reported per run: messages/s, reply latency p50/p95 (POST → reply at the fake), and CPU seconds
per message of the serving processes, of this process (load generator + fake Bot API), of the
Chroma server and of all PostgreSQL processes (shared with anything else using the server), and
how busy the whole machine was. `--baseline DIR` also runs a checkout of another revision (e.g.
main) with one process, in the same conditions, for a ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from fakes.telegram_server import FakeBotApi  # noqa: E402
from report import report, timed_threads  # noqa: E402
from telegram_bench import ReplyWatch  # noqa: E402

from bot.evaluation import DEFAULT_SET, load_items  # noqa: E402
from tests.cluster import chroma_server, fresh_database, serve_processes  # noqa: E402
from tests.serving import TOKEN, free_port  # noqa: E402

SECRET = "bench-webhook-secret_0123"
OPENINGS = ["", "请问", "你好，", "想问一下，", "麻烦问下，"]
FIRST_USER = 7_000_000
TICK = os.sysconf("SC_CLK_TCK")


def distinct_questions(count: int) -> list[str]:
    base = [i.question for i in load_items(ROOT / DEFAULT_SET) if i.expect and not i.region]
    return [OPENINGS[(n // len(base)) % len(OPENINGS)] + base[n % len(base)] for n in range(count)]


# -- CPU accounting from /proc ------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(k) for k in f.read().split()]
    return kids


def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICK


def postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "postgres":
                    pids.append(int(entry))
    return pids


def machine_busy() -> tuple[float, float]:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# -- the load ------------------------------------------------------------------------------------------
class Phones:
    """`workers` simulated workers posting webhook updates and timing the replies."""

    def __init__(self, fake: FakeBotApi, port: int, questions: list[str], messages: int, first_user: int) -> None:
        self.fake, self.port, self.questions, self.messages = fake, port, questions, messages
        self.first_user = first_user
        self.watch = ReplyWatch(fake)
        self.ids = itertools.count(first_user * 10)
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def update(self, user: int, text: str) -> bytes:
        chat = {"id": user, "type": "private", "first_name": "工友"}
        message = {"message_id": next(self.ids), "from": {"id": user, "is_bot": False, "first_name": "工友"},
                   "chat": chat, "date": int(time.time()), "text": text}
        return json.dumps({"update_id": next(self.ids), "message": message}, ensure_ascii=False).encode()

    def phone(self, n: int) -> None:
        user = self.first_user + n
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
        try:
            for k in range(self.messages):
                text = self.questions[(n * self.messages + k) % len(self.questions)]
                replied = self.watch.expect(user)
                start = time.perf_counter()
                body = self.update(user, text)
                try:
                    conn.request("POST", "/telegram", body, headers)
                    response = conn.getresponse()
                except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                    conn.close()  # the server closed the idle keep-alive connection (after 5 s): a new one
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                    conn.request("POST", "/telegram", body, headers)
                    response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"webhook answered {response.status}")
                if not replied.wait(timeout=120):
                    raise TimeoutError(f"no reply to {text!r}")
                with self.lock:
                    self.latencies.append(time.perf_counter() - start)
        except Exception as exc:  # counted, not fatal: the run reports its errors
            with self.lock:
                self.errors.append(f"{user}: {type(exc).__name__}: {exc}")
        finally:
            conn.close()


def run_once(label: str, code: Path, processes: int, args: argparse.Namespace, fake: FakeBotApi,
             chroma_port: int, chroma_pid: int, cache: Path, first_user: int) -> dict[str, object]:
    port = free_port()
    with fresh_database("qiuxue_bench") as url, tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        if cache.is_dir():
            shutil.copytree(cache, data / "cache")
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "QIUXUE__DATA_DIR": str(data),
               "QIUXUE__DATABASE__URL": url, "QIUXUE__INDEX__MODE": "http", "QIUXUE__INDEX__PORT": str(chroma_port),
               "QIUXUE__INDEX__COLLECTION_PREFIX": f"bench{first_user}",
               "QIUXUE__SERVER__PORT": str(port), "QIUXUE__SERVER__CHANNELS": '["telegram"]',
               "QIUXUE__TELEGRAM__MODE": "webhook", "QIUXUE__TELEGRAM__BASE_URL": f"{fake.base_url}/bot",
               "QIUXUE__TELEGRAM__WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram",
               "QIUXUE__CHAT__RATE_LIMIT_MESSAGES": "100000", "TELEGRAM_BOT_TOKEN": TOKEN,
               "TELEGRAM_WEBHOOK_SECRET": SECRET, "PYTHONPATH": str(code),
               **({"QIUXUE__KNOWLEDGE__PATHS": json.dumps([str(p.resolve()) for p in args.knowledge])}
                  if args.knowledge else {})}
        subprocess.run([sys.executable, "-m", "bot.cli", "ingest", "--json"], cwd=code, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        if not cache.is_dir():  # later runs take the KB's vectors from here: no model time
            shutil.copytree(data / "cache", cache)
        with serve_processes(env, port, processes, code=code) as proc:
            phones = Phones(fake, port, args.questions, args.messages, first_user)
            serving = tree(proc.pid)
            before = (cpu_seconds(serving), os.times(), cpu_seconds([chroma_pid]), cpu_seconds(postgres_pids()),
                      machine_busy())
            elapsed = timed_threads(phones.phone, args.workers)
            after = (cpu_seconds(serving), os.times(), cpu_seconds([chroma_pid]), cpu_seconds(postgres_pids()),
                     machine_busy())
    lat = sorted(phones.latencies)
    done = max(1, len(lat))

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000) if lat else float("nan")

    own = (after[1].user + after[1].system) - (before[1].user + before[1].system)
    busy = (after[4][0] - before[4][0]) / max(1, after[4][1] - before[4][1])
    if phones.errors:
        print(f"{label}: {len(phones.errors)} errors, e.g. {phones.errors[0]}", file=sys.stderr)
    return {"run": label, "processes": processes, "workers": args.workers, "messages": len(lat),
            "errors": len(phones.errors), "seconds": round(elapsed, 1), "messages_per_s": round(len(lat) / elapsed, 1),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95),
            "serve_cpu_ms_per_msg": round(1000 * (after[0] - before[0]) / done, 1),
            "bench_cpu_ms_per_msg": round(1000 * own / done, 1),
            "chroma_cpu_ms_per_msg": round(1000 * (after[2] - before[2]) / done, 1),
            "postgres_cpu_ms_per_msg": round(1000 * (after[3] - before[3]) / done, 1),
            "machine_busy": round(busy, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--workers", type=int, default=200, help="simulated workers writing at once")
    parser.add_argument("--messages", type=int, default=4, help="questions per simulated worker")
    parser.add_argument("--baseline", type=Path, help="a checkout of another revision to run with one process too")
    parser.add_argument("--knowledge", type=Path, nargs="+", help="index these paths instead of the configured KB")
    args = parser.parse_args()
    args.questions = distinct_questions(args.workers * args.messages)
    results = []
    with FakeBotApi() as fake, tempfile.TemporaryDirectory() as tmp:
        chroma_port = free_port()
        with chroma_server(Path(tmp) / "chroma", chroma_port) as chroma:
            runs = [("baseline", args.baseline.resolve(), 1)] if args.baseline else []
            runs += [("this", ROOT, n) for n in args.processes]
            cache = ROOT / "data" / "cache"
            cache = cache if cache.is_dir() else Path(tmp) / "cache"
            for k, (label, code, n) in enumerate(runs):
                results.append(run_once(label, code, n, args, fake, chroma_port, chroma.pid, cache,
                                        FIRST_USER + 100_000 * k))
                print(json.dumps(results[-1]), file=sys.stderr)
    report("serve", {
        "code": lambda r: r["run"], "processes": lambda r: r["processes"], "workers": lambda r: r["workers"],
        "messages": lambda r: r["messages"], "errors": lambda r: r["errors"],
        "messages/s": lambda r: r["messages_per_s"], "p50 ms": lambda r: r["p50_ms"], "p95 ms": lambda r: r["p95_ms"],
        "serve CPU ms/msg": lambda r: r["serve_cpu_ms_per_msg"], "bench+fake CPU ms/msg": lambda r: r["bench_cpu_ms_per_msg"],
        "Chroma CPU ms/msg": lambda r: r["chroma_cpu_ms_per_msg"],
        "PostgreSQL CPU ms/msg": lambda r: r["postgres_cpu_ms_per_msg"], "machine busy": lambda r: r["machine_busy"],
    }, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
