"""Serve start-up: seconds from starting `qiuxue serve` (existing index) to /healthz ok and to the first answer.

    python bench/serve_startup_bench.py [--runs 3] [--data-dir DIR] [--src DIR] [--json]

Each run starts `qiuxue serve` as a fresh process on a free port with only the web chat channel,
against a data_dir whose database and index already exist (`--data-dir`, default a temporary one into
which the shipped knowledge base is ingested once first, seeded with ./data/cache's vectors if there).
Timed from just before the process is started: the first `GET /healthz` that says ok, and the first
answer to a question sent through the web chat (`POST /chat/send`, then `GET /chat/messages` until the
reply is there), i.e. the full path a worker's message takes. Reported: each run and the median, with
the child's CPU seconds until the answer. The machine may be loaded by other work: the load average is
printed next to the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from report import ingested_data_dir

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "广东求学圆梦补贴多少钱？"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(env: dict[str, str], src: Path, timeout: float) -> dict[str, float]:
    port = free_port()
    env = {**env, "QIUXUE__SERVER__PORT": str(port)}
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], env=env, cwd=src,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(timeout=5.0, cookies={"qiuxue_chat": uuid.uuid4().hex}) as http:
            healthy = _until(lambda: _ok(http, f"{base}/healthz"), started, timeout, proc)
            http.post(f"{base}/chat/send", json={"id": "1", "text": QUESTION}).raise_for_status()
            answered = _until(lambda: bool(http.get(f"{base}/chat/messages").json()["messages"]), started,
                              timeout, proc)
            cpu = child_cpu(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    return {"healthz_s": round(healthy, 3), "first_answer_s": round(answered, 3), "cpu_s": round(cpu, 3)}


def _ok(http: httpx.Client, url: str) -> bool:
    try:
        r = http.get(url)
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and r.json().get("status") == "ok"


def _until(check, started: float, timeout: float, proc: subprocess.Popen) -> float:  # type: ignore[no-untyped-def, type-arg]
    """Seconds since `started` when `check()` first held (polled every 20 ms)."""
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"qiuxue serve exited with {proc.returncode}")
        try:
            if check():
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise TimeoutError("qiuxue serve did not become ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, help="a data_dir with a live index (default: a fresh temporary one)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a run may take")
    parser.add_argument("--src", type=Path, default=ROOT, help="the code to start (e.g. an export of main)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    src = args.src.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data_dir or Path(tmp)
        env = {**os.environ, "QIUXUE__DATA_DIR": str(data), "PYTHONPATH": str(src),
               "QIUXUE__SERVER__CHANNELS": '["web"]', "NO_PROXY": "127.0.0.1,localhost"}
        if args.data_dir is None:
            ingested_data_dir(data, env, src, ROOT / "data" / "cache")
        runs = [one_run(env, src, args.timeout) for _ in range(args.runs)]
    result = {"runs": runs, "median_healthz_s": statistics.median(r["healthz_s"] for r in runs),
              "median_first_answer_s": statistics.median(r["first_answer_s"] for r in runs),
              "median_cpu_s": statistics.median(r["cpu_s"] for r in runs), "load_average_1min": os.getloadavg()[0]}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.runs} runs; 1-minute load average at the end {result['load_average_1min']:.2f} (2 cores)")
    print("| run | /healthz ok s | first answer s | CPU s until the answer |")
    print("|---|---|---|---|")
    for i, r in enumerate(runs, 1):
        print(f"| {i} | {r['healthz_s']:.2f} | {r['first_answer_s']:.2f} | {r['cpu_s']:.2f} |")
    print(f"| median | {result['median_healthz_s']:.2f} | {result['median_first_answer_s']:.2f} | "
          f"{result['median_cpu_s']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
