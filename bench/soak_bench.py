"""Memory soak: RSS of one `qiuxue serve` process fed distinct workers and questions for N minutes.

    python bench/soak_bench.py [--minutes 10] [--phones 4] [--per-worker 3] [--data-dir DIR] [--json]

Starts `qiuxue serve` (web chat channel only, SQLite, a temporary data_dir with the shipped knowledge
base indexed — seeded from ./data/cache — unless `--data-dir`), then `--phones` threads each play one
worker after another: a new worker (a new chat cookie) every `--per-worker` messages, each message a
distinct question (an eval question with the message number appended, so no two texts are the same
and the query-embedding cache keeps filling), each waiting for its reply through the web chat. RSS
(VmRSS of the serve process) is sampled every 10 s. Reported: RSS at the first sample, peak and end,
the least-squares slope in MB/minute over the whole run and over its second half (a process that has
settled shows ~0 there), messages answered and the number of distinct workers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from report import ingested_data_dir
from serve_startup_bench import free_port

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_SECONDS = 10.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mm = sum(m for _, m in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 60 * sum((t - mt) * (m - mm) for t, m in samples) / var if var else 0.0


def questions() -> list[str]:
    from common.yamlio import read_yaml

    out = [str(r.get("q") or "") for name in ("questions.yaml", "frozen.yaml")
           for r in read_yaml(ROOT / "tests" / "eval" / name)]
    return [q for q in dict.fromkeys(out) if q.strip()]


class Phones:
    """Threads sending distinct questions as ever new workers, each waiting for its reply."""

    def __init__(self, base: str, count: int, per_worker: int, until: float) -> None:
        self.base, self.count, self.per_worker, self.until = base, count, per_worker, until
        self.texts = questions()
        self.counter = itertools.count()
        self.answered = self.errors = self.workers = 0
        self._lock = threading.Lock()

    def run(self) -> None:
        threads = [threading.Thread(target=self._phone, daemon=True) for _ in range(self.count)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()

    def _phone(self) -> None:
        while time.monotonic() < self.until:
            with self._lock:
                self.workers += 1
            with httpx.Client(base_url=self.base, timeout=30.0, cookies={"qiuxue_chat": uuid.uuid4().hex}) as http:
                seen = 0
                for k in range(self.per_worker):
                    if time.monotonic() >= self.until:
                        return
                    n = next(self.counter)
                    text = f"{self.texts[n % len(self.texts)]} {n}"
                    try:
                        seen = self._ask(http, str(k), text, seen)
                        with self._lock:
                            self.answered += 1
                    except (httpx.HTTPError, TimeoutError):
                        with self._lock:
                            self.errors += 1

    @staticmethod
    def _ask(http: httpx.Client, msg_id: str, text: str, after: int, timeout: float = 60.0) -> int:
        """Send one question, wait for a reply; the newest message id seen."""
        http.post("/chat/send", json={"id": msg_id, "text": text}).raise_for_status()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = http.get("/chat/messages", params={"after": after}).json()["messages"]
            if got:
                return int(got[-1]["id"])
            time.sleep(0.05)
        raise TimeoutError(text)


def soak(env: dict[str, str], minutes: float, phones: int, per_worker: int) -> dict[str, object]:
    port = free_port()
    env = {**env, "QIUXUE__SERVER__PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc)
        started = time.monotonic()
        feeder = Phones(base, phones, per_worker, started + minutes * 60)
        thread = threading.Thread(target=feeder.run, daemon=True)
        thread.start()
        samples: list[tuple[float, float]] = []
        while thread.is_alive() or not samples:
            samples.append((time.monotonic() - started, rss_mb(proc.pid)))
            thread.join(SAMPLE_SECONDS)
        samples.append((time.monotonic() - started, rss_mb(proc.pid)))
    finally:
        proc.terminate()
        proc.wait(30)
    half = [s for s in samples if s[0] >= samples[-1][0] / 2]
    return {"minutes": minutes, "phones": phones, "answered": feeder.answered, "errors": feeder.errors,
            "workers": feeder.workers, "rss_start_mb": round(samples[0][1], 1),
            "rss_peak_mb": round(max(m for _, m in samples), 1), "rss_end_mb": round(samples[-1][1], 1),
            "slope_mb_per_min": round(slope_mb_per_min(samples), 2),
            "slope_second_half_mb_per_min": round(slope_mb_per_min(half), 2),
            "samples": [(round(t, 1), round(m, 1)) for t, m in samples], "load_average_1min": os.getloadavg()[0]}


def _wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"qiuxue serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("qiuxue serve did not become healthy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--phones", type=int, default=4, help="simulated phones at once")
    parser.add_argument("--per-worker", type=int, default=3, help="messages per worker before a new one")
    parser.add_argument("--data-dir", type=Path, help="a data_dir with a live index (default: a fresh temporary one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data_dir or Path(tmp)
        env = {**os.environ, "QIUXUE__DATA_DIR": str(data), "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1,localhost",
               "QIUXUE__SERVER__CHANNELS": '["web"]', "QIUXUE__CHAT__RATE_LIMIT_MESSAGES": "1000"}
        if args.data_dir is None:
            ingested_data_dir(data, env, ROOT, ROOT / "data" / "cache")
        result = soak(env, args.minutes, args.phones, args.per_worker)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['minutes']} min, {args.phones} phones, {result['workers']} distinct workers, "
          f"{result['answered']} answers, {result['errors']} errors; load average {result['load_average_1min']:.1f}")
    print("| RSS start MB | peak MB | end MB | slope MB/min | slope, second half MB/min |")
    print("|---|---|---|---|---|")
    print(f"| {result['rss_start_mb']} | {result['rss_peak_mb']} | {result['rss_end_mb']} | "
          f"{result['slope_mb_per_min']} | {result['slope_second_half_mb_per_min']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
