"""Test helpers that run the real serving stack: in-process (the hub, its channels, the ASGI app on a port),
or as a real `qiuxue serve` OS process (`qiuxue_serve`), to be killed or run side by side with another."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from bot.channels import telegram
from bot.core.dialogue import Dialogue
from bot.core.hub import Hub
from bot.server import build_app
from common.settings import Settings
from tests.conftest import FAST, PROJECT

TOKEN = "123456789:AAFakeTokenForTests_0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def running_hub(cfg: Settings, *extra: object, with_telegram: bool = True,
                      serve_http: bool = False, build: Callable[[Hub], object] | None = None) -> AsyncIterator[Hub]:
    """The hub with the Telegram channel (against cfg.telegram.base_url) and any extra channels, running;
    `build(hub)` may add channels made from the hub (a channel module's `create`)."""
    hub = Hub(Dialogue(cfg))
    if with_telegram:
        telegram.create(cfg, hub, TOKEN)
    if build is not None:
        build(hub)
    for channel in extra:
        hub.register(channel)  # type: ignore[arg-type]
    if not serve_http:
        await hub.start()
        try:
            yield hub
        finally:
            await hub.stop()
        return
    server = uvicorn.Server(uvicorn.Config(build_app(cfg, hub), host=cfg.server.host, port=cfg.server.port,
                                           log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield hub
    finally:
        server.should_exit = True
        await task


def wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path | None = None, timeout: float = 120) -> None:
    """Until the process answers /healthz with 200 (fails with its log's tail if it exits first)."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:] if log else "exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "qiuxue serve did not come up"
        time.sleep(0.2)


@contextlib.contextmanager
def qiuxue_serve(cfg: Settings, port: int, fake: Any = None, *args: str, channels: tuple[str, ...] = ("--telegram",),
                 **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`qiuxue serve --telegram` (or other `channels` flags, plus `args`) as a real OS process on `port`, on
    cfg's data and database, Telegram pointed at `fake` (polling unless `env` says webhook); stopped
    (SIGTERM) afterwards. Its log goes to `serve-<port>.log` in data_dir (a pipe nobody reads would fill
    up and block the process)."""
    full = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "TELEGRAM_BOT_TOKEN": TOKEN,
            "QIUXUE__DATA_DIR": str(cfg.data_path), "QIUXUE__DATABASE__URL": cfg.database.url,
            "QIUXUE__SERVER__PORT": str(port), "QIUXUE__CHAT__RATE_LIMIT_MESSAGES": "1000", **FAST,
            **({"QIUXUE__TELEGRAM__BASE_URL": f"{fake.base_url}/bot"} if fake is not None else {}), **env}
    log = Path(cfg.data_path) / f"serve-{port}.log"
    with log.open("ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", *channels, *args], cwd=PROJECT,
                                env=full, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_healthy(port, proc, log)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


class ChromaServer:
    """A real `chroma run` server on 127.0.0.1 that can be stopped and started again on the same data.

    Run in its own process group and stopped as a group: `chroma run` leaves its server process behind
    when only the launcher is signalled."""

    def __init__(self, path: Path, port: int) -> None:
        self.path, self.port = path, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ChromaServer:
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "CHROMA_ANONYMIZED_TELEMETRY": "False"}
        self.proc = subprocess.Popen([str(Path(sys.executable).with_name("chroma")), "run", "--path", str(self.path),
                                      "--host", "127.0.0.1", "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                        f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, "chroma server did not start"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
