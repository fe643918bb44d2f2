"""The WeChat Official Account channel against a fake WeChat on 127.0.0.1 (tests/fakes/wechat_server.py):
signed callbacks in plaintext and safe (AES) mode answered passively and checked as WeChat checks them,
the 5-second rule, retries answered once (also across two apps on one PostgreSQL), bad callbacks
refused with nothing stored, the shared access_token (expiry, 40001/42001), 45015 told to the agent, a
full hand-off to the Telegram staff side, and an eligibility check by numbers across a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bot.channels import wechat
from bot.channels.base import PermanentFailure
from bot.channels.wechat_api import WechatApi, split_text
from bot.channels.wechat_token import WechatToken
from bot.core.hub import Hub
from bot.core.inbox import InboxItem
from bot.core.messages import UNSUPPORTED
from bot.core.outbox import Claimed, Outbox, OutboxItem, OutboxKind, OutboxStatus
from bot.core.redact import install_log_redaction, redact_log_text
from bot.core.store import Conversation, TranscriptLine
from bot.helpdesk.store import EventKind, Ticket, TicketEvent
from bot.server import load_channels
from common.clock import utcnow
from common.db import open_database
from common.settings import Config
from tests.conftest import FAST, make_config, unique_user
from tests.fakes.telegram_server import FakeBotApi
from tests.fakes.wechat_server import ACCOUNT, FakeWechat
from tests.serving import free_port, running_hub
from tests.test_helpdesk import AGENT, GROUP, in_group
from tests.test_telegram import plain


@pytest.fixture
def wx(no_network: list[object], monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWechat]:
    """The fake WeChat in safe (AES) mode; the test fails if anything beyond 127.0.0.1 was contacted."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with FakeWechat(aes=True) as fake:
        yield fake
    assert no_network == []


def wx_cfg(base: Config, fake: FakeWechat, tmp_path: Path, **extra: str) -> Config:
    db = {"QIUXUE__DATABASE__URL": base.database.url} if base.database.url else {}
    return make_config(tmp_path, QIUXUE__DATA_DIR=str(base.data_path), **db, **FAST,
                       QIUXUE__WECHAT__API_BASE_URL=fake.base_url, QIUXUE__SERVER__PORT=str(free_port()), **extra)


@contextlib.asynccontextmanager
async def wechat_app(cfg: Config, fake: FakeWechat, telegram: bool = False) -> AsyncIterator[tuple[Hub, str]]:
    """`qiuxue serve`'s app with the WeChat channel (and Telegram if asked) on cfg.server.port; the callback URL."""
    async with running_hub(cfg, with_telegram=telegram, serve_http=True,
                           build=lambda hub: wechat.create(cfg, hub, fake.secrets)) as hub:
        yield hub, f"http://127.0.0.1:{cfg.server.port}{cfg.wechat.path}"


async def eventually(check, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await asyncio.to_thread(check):
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def replies_to(fake: FakeWechat, openid: str) -> list[str]:
    """Everything the worker got: passive replies and customer-service messages."""
    return fake.passive_to(openid) + fake.sent_to(openid)


# -- signed callbacks, passive replies ---------------------------------------------------------------------

@pytest.mark.parametrize("aes", [True, False], ids=["aes", "plaintext"])
def test_signed_callbacks_get_passive_replies_that_wechat_accepts(kb_cfg, no_network, monkeypatch, tmp_path,
                                                                  aes: bool) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    user = unique_user("o")

    async def scenario(fake: FakeWechat, cfg: Config) -> None:
        async with wechat_app(cfg, fake) as (_hub, url):
            check = await asyncio.to_thread(_url_check, fake, url)
            assert check == "echo-123"
            hello = await asyncio.to_thread(fake.post_event, url, user, "subscribe")
            assert hello.status == 200 and hello.reply is not None
            assert "求学圆梦助手" in hello.reply and "回复数字选择" in hello.reply and "\n1. " in hello.reply
            answer = await asyncio.to_thread(fake.post_text, url, user, "广东能补多少钱")
            assert answer.status == 200 and answer.reply is not None and "来源" in answer.reply
            assert answer.seconds < cfg.wechat.reply_budget_seconds + 0.5

    with FakeWechat(aes=aes) as fake:
        asyncio.run(scenario(fake, wx_cfg(kb_cfg, fake, tmp_path)))
        assert len(fake.passive_to(user)) == 2 and fake.sent_to(user) == []  # nothing went through the API
    assert no_network == []
    if aes:
        assert fake.crypto is not None  # replies were decrypted and their MsgSignature checked by the fake


def _url_check(fake: FakeWechat, url: str) -> str:
    import urllib.request

    signed, _ = fake.signed(url, fake.message("nobody", "text", Content="x"))
    with urllib.request.urlopen(f"{signed}&echostr=echo-123", timeout=5) as r:
        return r.read().decode()
