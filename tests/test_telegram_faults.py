"""Telegram 429 storms and timeouts on every call type, worker side and staff side: one retry policy
(`bot/channels/telegram_api.with_retry`) waits out retry_after, retries timeouts with bounded backoff, and
gives up into the outbox's failure record; nothing is lost or doubled on the way."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.core.outbox import OutboxItem, OutboxStatus
from common.clock import aware
from common.db import open_database
from common.settings import Config
from tests.conftest import FAST, make_config
from tests.fakes.telegram_server import FakeBotApi
from tests.test_helpdesk import AGENT, GROUP, in_group, to_worker
from tests.test_telegram import plain, running_bot

pytestmark = pytest.mark.slow
CALL_TIMEOUT = 1.0


def faults_cfg(base: Config, fake: FakeBotApi, tmp_path: Path, **extra: str) -> Config:
    return make_config(tmp_path, QIUXUE__DATA_DIR=str(base.data_path), **FAST,
                       QIUXUE__TELEGRAM__BASE_URL=f"{fake.base_url}/bot", QIUXUE__HELPDESK__CHAT_ID=str(GROUP),
                       QIUXUE__HELPDESK__AGENTS=f"[{AGENT}]", QIUXUE__TELEGRAM__CALL_TIMEOUT_SECONDS=str(CALL_TIMEOUT),
                       QIUXUE__DELIVERY__BACKOFF_SECONDS="0.2", **extra)


def _gaps(fake: FakeBotApi, method: str) -> list[float]:
    times = [at for name, at in fake.call_times if name.lower() == method.lower()]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_429s_and_timeouts_on_every_call_type_are_retried_and_nothing_is_doubled(kb_cfg, fake, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = faults_cfg(kb_cfg, fake, tmp_path)
    user = 9101
    for method in ("sendMessage", "createForumTopic", "answerCallbackQuery", "editMessageReplyMarkup",
                   "copyMessage"):
        fake.stall_next(method, CALL_TIMEOUT + 0.5)  # first a request lost on the way: the client times out
        fake.fail_next(method, 429, retry_after=1)  # then "Too Many Requests: retry after 1"

    async def scenario() -> None:
        async with running_bot(cfg):
            fake.send_text(user, "转人工")
            await to_worker(fake, user, "排第")
            card = await in_group(fake, "工单 #")  # createForumTopic and the card's sendMessage
            ticket_id = int(plain(card["text"]).split("#")[1].split("（")[0])
            fake.press_button(AGENT, card["message_id"], f"hd:claim:{ticket_id}")  # answerCallbackQuery, edit…
            await to_worker(fake, user, "已接手")
            await fake.wait_for_call_async("editMessageReplyMarkup", lambda p: True, timeout=30)
            photo = fake.send_photo(AGENT, caption="申请表样例", chat_id=GROUP,
                                    message_thread_id=card["message_thread_id"])
            copied = await fake.wait_for_call_async(
                "copyMessage", lambda p: str(p.get("chat_id")) == str(user) and int(p["message_id"]) == photo,
                timeout=30)
            assert copied
            await asyncio.sleep(1.5)  # a doubled message would arrive now

    asyncio.run(scenario())
    assert sorted(set(fake.stalled)) == sorted({"sendMessage", "createForumTopic", "answerCallbackQuery",
                                                "editMessageReplyMarkup", "copyMessage"})
    worker_texts = [plain(r["text"]) for r in fake.sent(user) if "text" in r]
    assert sum("排第" in x for x in worker_texts) == 1 and sum("已接手" in x for x in worker_texts) == 1
    assert len([r for r in fake.sent(GROUP) if plain(r.get("text", "")).startswith("工单 #")]) == 1
    assert len(fake.topics) == 1  # one topic, though its creation timed out once and was refused once
    for method in ("createForumTopic", "answerCallbackQuery", "copyMessage"):  # one caller each: retry_after kept
        gaps = _gaps(fake, method)
        assert gaps and gaps[0] >= 0.95, (method, gaps)


def test_a_long_429_is_kept_by_the_outbox_and_a_storm_that_never_ends_is_recorded_as_failed(kb_cfg, fake,  # type: ignore[no-untyped-def]
                                                                                           tmp_path) -> None:
    cfg = faults_cfg(kb_cfg, fake, tmp_path, QIUXUE__DELIVERY__MAX_ATTEMPTS="2")
    patient, stormed = 9102, 9103

    async def scenario() -> None:
        async with running_bot(cfg):
            fake.fail_next("sendMessage", 429, retry_after=120)  # longer than waiting inline makes sense
            fake.send_text(patient, "广东能补多少钱")
            row = await _row_with_error(cfg, str(patient), "rate limited")
            assert row.status == OutboxStatus.PENDING
            assert aware(row.not_before) - aware(row.created_at) >= timedelta(seconds=110)  # not tried earlier
            fake.fail_next("sendMessage", 429, retry_after=1, times=1000)
            fake.send_text(stormed, "广东能补多少钱")
            failed = await _row_with_error(cfg, str(stormed), "rate limited", OutboxStatus.FAILED, timeout=60)
            assert failed.attempts == 2  # delivery.max_attempts, each with its own retries inside

    asyncio.run(scenario())
    assert fake.sent(patient) == [] and fake.sent(stormed) == []


async def _row_with_error(cfg: Config, address: str, error: str, status: OutboxStatus | None = None,
                          timeout: float = 30) -> OutboxItem:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open_database(cfg)() as s:
            row = s.scalars(select(OutboxItem).where(OutboxItem.address == address)).first()
        if row is not None and error in row.error and (status is None or row.status == status):
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"no outbox row to {address} with {error!r} ({status})")
