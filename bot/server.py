"""`qiuxue serve`: one process, one ASGI app (Starlette under uvicorn), every configured channel.

Routes: each channel's own (the Telegram webhook, later WeChat's callback), the web console under
`/console/` (`bot.console`, when `console.enabled`), `GET /healthz` (database reachable, live index version) and `GET /metrics` (Prometheus text).
Channels are listed in `server.channels`; each is the module `bot/channels/<name>.py` with a
`create(cfg, hub)` function. A channel whose credentials are not in the environment is skipped
with a log line (asked for explicitly, e.g. `--telegram`, it is an error instead). Telegram
polling runs beside the app in the same event loop.

`--workers N` (or `server.workers`) runs N such processes on the one port (`bot.server_workers`);
they need PostgreSQL. Database calls and answers run in a pool of `server.threads` threads. Memory: malloc
is held to `server.malloc_arenas` arenas and trimmed every `server.malloc_trim_seconds` (`common/malloc.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.core import metrics
from bot.core.dialogue import Dialogue
from bot.core.hub import Hub
from bot.server_workers import Supervisor, reuseport_socket, slot_name
from common import malloc
from common.db import database_url
from common.settings import Settings

log = logging.getLogger(__name__)


def load_channels(cfg: Settings, hub: Hub, names: list[str], required: set[str]) -> list[Any]:
    made: list[Any] = []
    for name in names:
        module = importlib.import_module(f"bot.channels.{name}")
        try:
            made += module.create(cfg, hub)
        except SystemExit as exc:
            if name in required or "not set" not in str(exc) or "TOKEN" not in str(exc):
                raise
            log.warning("channel %s skipped: %s", name, exc)
    return made


async def trim_every(seconds: float) -> None:
    """Hand the memory malloc freed back to the system every `seconds` (0: never), off the event loop."""
    if seconds <= 0:
        return
    while True:
        await asyncio.sleep(seconds)
        await asyncio.to_thread(malloc.trim)


def build_app(cfg: Settings, hub: Hub) -> Starlette:
    async def healthz(_request: Request) -> Response:
        try:
            return JSONResponse({**hub.health(), "pid": os.getpid()})  # which serving process answered
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "error": type(exc).__name__}, status_code=503)

    async def metrics_page(_request: Request) -> Response:
        with contextlib.suppress(Exception):
            hub.health()  # refreshes the gauges (open tickets, pending inbox)
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(cfg.server.threads, thread_name_prefix="qiuxue"))
        await hub.start()
        trimming = asyncio.create_task(trim_every(cfg.server.malloc_trim_seconds), name="qiuxue-malloc-trim")
        try:
            yield
        finally:
            trimming.cancel()
            await hub.stop()

    routes: list[Any] = [Route("/healthz", healthz), Route("/metrics", metrics_page)]
    for channel in hub.channels.values():
        routes += channel.routes()
    if cfg.console.enabled:
        from bot.console.app import routes as console_routes

        routes += console_routes(cfg, hub)
    return Starlette(routes=routes, lifespan=lifespan)


def serve(cfg: Settings, names: list[str], required: set[str], slot: int | None = None) -> int:
    """Serve in this process; `slot` (of `--workers`): one of several processes sharing the port."""
    import uvicorn

    malloc.cap_arenas(cfg.server.malloc_arenas)  # before any thread of this process allocates
    host, port = cfg.server.host, cfg.server.port
    shared = slot is not None
    hub = Hub(Dialogue(cfg), owner=slot_name(host, port, slot) if shared else "", primary=not slot, shared=shared)
    load_channels(cfg, hub, names, required)
    app = build_app(cfg, hub)
    log.warning("qiuxue serve on %s:%s with channels: %s%s", host, port, ", ".join(sorted(hub.channels)) or "none",
                f" (process {slot})" if shared else "")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                           lifespan="on"))
    server.run(sockets=[reuseport_socket(host, port)] if shared else None)
    return 0


def serve_workers(cfg: Settings, args: argparse.Namespace, workers: int) -> int:
    """Run `workers` serving processes (`qiuxue serve --slot K`) under a supervisor."""
    if database_url(cfg).startswith("sqlite"):
        raise SystemExit("qiuxue serve --workers needs PostgreSQL: set database.url")
    head = [sys.executable, "-m", "bot.cli", *(["--config", args.config] if getattr(args, "config", None) else []),
            *(["-v"] if getattr(args, "verbose", False) else []), "serve",
            *[f"--{name}" for name in ("telegram", "wechat") if getattr(args, name, False)]]
    log.warning("qiuxue serve: %d processes on %s:%s", workers, cfg.server.host, cfg.server.port)
    return Supervisor(lambda slot: [*head, "--slot", str(slot)], workers).run()


def cmd_serve(cfg: Settings, args: argparse.Namespace) -> int:
    required = {name for name in ("telegram", "wechat") if getattr(args, name, False)}
    names = list(dict.fromkeys([*cfg.server.channels, *sorted(required)]))
    slot = getattr(args, "slot", None)
    workers = getattr(args, "workers", None) or cfg.server.workers
    if slot is None and workers > 1:
        return serve_workers(cfg, args, workers)
    return serve(cfg, names, required, slot)
