"""Test helpers that run the real serving stack in-process: the hub, its channels, the ASGI app on a port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable

import uvicorn

from bot.channels import telegram
from bot.core.dialogue import Dialogue
from bot.core.hub import Hub
from bot.server import build_app
from common.settings import Settings

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
