"""Start-up benchmark: how long `qiuxue --help`, `check`, `kb status` and `report` take from a cold process.

    python bench/startup_bench.py [--runs 7] [--json]

Each command runs `--runs` times as a fresh process against a fresh data_dir whose database and
index exist (the small test knowledge base is ingested once first, and one run of each command
warms the migrations), so what is timed is what an admin waits for. Reported per command: the
fastest and the median wall-clock seconds, and the median CPU seconds (user + system) of the child
— CPU time is the steadier figure on a machine other work is loading. `python -c pass` is the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILE = '{"region": "广东", "age": 30, "employed": true}'
COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "qiuxue --help": [sys.executable, "-m", "bot.cli", "--help"],
    "qiuxue check": [sys.executable, "-m", "bot.cli", "check", "--json", PROFILE],
    "qiuxue kb status": [sys.executable, "-m", "bot.cli", "kb", "status"],
    "qiuxue report": [sys.executable, "-m", "bot.cli", "report"],
}


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one run of `cmd` as a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "QIUXUE__DATA_DIR": tmp, "PYTHONPATH": str(ROOT)}
        # An installed package has its bytecode compiled; without it every run recompiles our modules.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([sys.executable, "-m", "bot.cli", "ingest", str(ROOT / "tests/data/kb"), "--by", "bench"],
                       env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        results = {}
        for name, cmd in COMMANDS.items():
            timed(cmd, env)  # warm-up: page cache, bytecode, migrations
            runs = [timed(cmd, env) for _ in range(args.runs)]
            walls, cpus = [w for w, _ in runs], [c for _, c in runs]
            results[name] = {"wall_min": round(min(walls), 3), "wall_median": round(statistics.median(walls), 3),
                             "cpu_median": round(statistics.median(cpus), 3)}
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"runs": args.runs, "load_average_1min": load, "commands": results}))
        return 0
    print(f"{args.runs} runs each; 1-minute load average at the end {load:.2f} (2 cores)")
    print(f"{'command':<20} {'wall min':>9} {'wall p50':>9} {'cpu p50':>9}")
    for name, r in results.items():
        print(f"{name:<20} {r['wall_min']:>9.3f} {r['wall_median']:>9.3f} {r['cpu_median']:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
