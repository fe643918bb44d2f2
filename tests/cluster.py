"""Real separate processes for multi-process tests and benchmarks: a Chroma server, a fresh PostgreSQL
database, and `qiuxue serve --workers N` in Telegram webhook mode, each started and stopped cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

PROJECT = Path(__file__).resolve().parent.parent
CHROMA = Path(sys.executable).with_name("chroma")
ADMIN_DSN = "host=127.0.0.1 port=5432 dbname=test user={user}"


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(ADMIN_DSN.format(user="postgres"), autocommit=True)
    except psycopg.OperationalError:
        return psycopg.connect(ADMIN_DSN.format(user="root"), autocommit=True)


@contextlib.contextmanager
def fresh_database(prefix: str = "qiuxue_cluster") -> Iterator[str]:
    """A new PostgreSQL database on 127.0.0.1 (SQLAlchemy URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with _admin() as conn:
        user = conn.info.user
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{user}@127.0.0.1:5432/{name}"
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _get(url: str, timeout: float = 2.0) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return bytes(response.read())


@contextlib.contextmanager
def chroma_server(path: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`chroma run` on 127.0.0.1:port storing under path, up and answering its heartbeat."""
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "CHROMA_ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen([str(CHROMA), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                _get(f"http://127.0.0.1:{port}/api/v2/heartbeat", 1)
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the chroma server did not start")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextlib.contextmanager
def serve_processes(env: dict[str, str], port: int, workers: int, *, timeout: float = 600, code: Path = PROJECT,
                    stderr: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`qiuxue serve` (`--workers N` when N > 1) of the code in `code`, ready when /healthz has answered from N
    distinct processes (one answer for a single process)."""
    command = [sys.executable, "-m", "bot.cli", "serve", *(["--workers", str(workers)] if workers > 1 else [])]
    proc = subprocess.Popen(command, cwd=code, env={**env, "PYTHONPATH": str(code)}, stdout=subprocess.DEVNULL,
                            stderr=stderr)
    try:
        seen: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(seen) < workers:
            with contextlib.suppress(OSError, ValueError):
                health = json.loads(_get(f"http://127.0.0.1:{port}/healthz"))
                if health.get("status") == "ok":
                    seen.add(int(health.get("pid", 0)))
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"qiuxue serve --workers {workers} did not come up ({len(seen)} answered)")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
