"""Delivery guarantees: nothing lost or doubled across kill -9, one bad message never blocks the rest,
two channels share one helpdesk relay, and a person handling a conversation gets every message.

The kill tests run `qiuxue serve` as a real OS process against the fake Bot API on 127.0.0.1 and
SIGKILL it at chosen moments.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.channels.inprocess import InProcessChannel, InProcessChat
from bot.core.dialogue import Dialogue
from bot.core.inbox import InboxItem
from bot.core.outbox import OutboxItem, OutboxStatus
from bot.helpdesk.store import EventKind, Ticket, TicketEvent
from common.settings import Config
from tests.conftest import FAST, PROJECT, make_config, unique_user
from tests.fakes.telegram_server import FakeBotApi
from tests.serving import TOKEN, free_port, kill9, qiuxue_serve
from tests.test_helpdesk import AGENT, GROUP, in_group
from tests.test_telegram import plain, running_bot

pytestmark = pytest.mark.slow


def staff_cfg(base: Config, fake: FakeBotApi, tmp_path: Path, **extra: str) -> Config:
    db = {"QIUXUE__DATABASE__URL": base.database.url} if base.database.url else {}
    return make_config(tmp_path, QIUXUE__DATA_DIR=str(base.data_path), **db, **FAST, **extra,
                       QIUXUE__TELEGRAM__BASE_URL=f"{fake.base_url}/bot", QIUXUE__HELPDESK__CHAT_ID=str(GROUP),
                       QIUXUE__HELPDESK__AGENTS=f"[{AGENT}]")


async def eventually(check, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await asyncio.to_thread(check)
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


# -- in-process: two channels, one relay --------------------------------------------------------------

def test_a_worker_on_another_channel_gets_the_agents_telegram_reply(db_cfg, fake, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = staff_cfg(db_cfg, fake, tmp_path)
    phone = InProcessChannel()
    user = unique_user("two")

    async def scenario() -> None:
        async with running_bot(cfg, phone) as hub:
            worker = InProcessChat(hub.dialogue, user)
            await asyncio.to_thread(worker.say, "转人工")
            assert "排第" in worker.text
            hub.kick()
            card = await in_group(fake, "工单 #")
            assert "[test]" in plain(card["text"])  # the agents see which channel the worker is on
            fake.send_group_text(GROUP, AGENT, "你好，我是工会的小李", message_thread_id=card["message_thread_id"])
            await eventually(lambda: any("小李" in r.text for r in phone.pushed[user]))
            await asyncio.to_thread(worker.say, "我想问广州的补贴")
            hub.kick()
            await in_group(fake, "我想问广州的补贴")

    asyncio.run(scenario())
    texts = [r.text for r in phone.pushed[user]]
    assert sum("小李" in x for x in texts) == 1 and any("已接手" in x for x in texts)


def test_a_refused_delivery_is_recorded_and_the_agent_told(kb_cfg, fake, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = staff_cfg(kb_cfg, fake, tmp_path)
    blocked, other = unique_user("blk"), unique_user("ok")
    phone = InProcessChannel(refuse={blocked})

    async def scenario() -> None:
        async with running_bot(cfg, phone) as hub:
            cards = {}
            for user in (blocked, other):
                await asyncio.to_thread(InProcessChat(hub.dialogue, user).say, "转人工")
                hub.kick()
                cards[user] = await in_group(fake, f"{user}")
            for user in (blocked, other):
                fake.send_group_text(GROUP, AGENT, f"回复给 {user}", message_thread_id=cards[user]["message_thread_id"])
            notice = await in_group(fake, "没有送达")
            assert notice["message_thread_id"] == cards[blocked]["message_thread_id"]
            assert "blocked" in plain(notice["text"])
            await eventually(lambda: any(f"回复给 {other}" in r.text for r in phone.pushed[other]))

    asyncio.run(scenario())
    with Dialogue(cfg).store.sessions() as s:
        rows = list(s.scalars(select(OutboxItem).where(OutboxItem.address == blocked)))
        assert any(r.status == OutboxStatus.FAILED and "blocked" in r.error for r in rows)
        ticket = s.scalars(select(Ticket).where(Ticket.user_id == blocked)).one()
        kinds = {e.kind for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id))}
        assert EventKind.UNDELIVERED in kinds


def test_a_deleted_staff_topic_does_not_jam_the_relay(kb_cfg, fake, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Telegram refuses for good ("message thread not found"): recorded; later tickets still go through."""
    cfg = staff_cfg(kb_cfg, fake, tmp_path)
    first, second = unique_user("t1"), unique_user("t2")

    async def scenario() -> None:
        async with running_bot(cfg) as hub:
            await asyncio.to_thread(InProcessChat(hub.dialogue, first).say, "转人工")
            fake.fail_next("sendMessage", error_code=400, description="Bad Request: message thread not found")
            hub.kick()
            await eventually(lambda: _failed_rows(cfg))
            await asyncio.to_thread(InProcessChat(hub.dialogue, second).say, "转人工")
            hub.kick()
            await in_group(fake, second)

    asyncio.run(scenario())
    assert any("thread not found" in r.error for r in _failed_rows(cfg))

    async def restart() -> None:  # nothing pending can stop start-up
        async with running_bot(cfg):
            await asyncio.sleep(0.3)

    asyncio.run(restart())


def _failed_rows(cfg: Config) -> list[OutboxItem]:
    with Dialogue(cfg).store.sessions() as s:
        return list(s.scalars(select(OutboxItem).where(OutboxItem.status == OutboxStatus.FAILED)))


def test_every_message_reaches_the_agent_during_a_handoff_despite_the_flood_limit(kb_cfg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = make_config(tmp_path, QIUXUE__DATA_DIR=str(kb_cfg.data_path), QIUXUE__CHAT__RATE_LIMIT_MESSAGES="8",
                      QIUXUE__CHAT__RATE_LIMIT_SECONDS="10", QIUXUE__HELPDESK__CHAT_ID=str(GROUP))
    w = InProcessChat(Dialogue(cfg), unique_user("flood"))
    w.say("转人工")
    for n in range(20):
        w.say(f"补充情况第{n}条")
        assert "太快" not in w.text and "too fast" not in w.text.lower()
    with w.dialogue.store.sessions() as s:
        ticket = s.scalars(select(Ticket).where(Ticket.user_id == w.user_id)).one()
        relayed = [e.text for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                                                       TicketEvent.kind == EventKind.WORKER_MESSAGE))]
    assert relayed == [f"补充情况第{n}条" for n in range(20)]
    w.say("/bot")
    replies = [w.say(f"广东第{n}问")[0].text for n in range(12)]
    assert any("太快" in r or "too fast" in r.lower() for r in replies)  # the limit is back with the bot


def test_an_unparseable_update_is_skipped_and_polling_goes_on(tg_cfg, fake, caplog) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with running_bot(tg_cfg):
            with fake._cond:
                for bad in ({"message": {}}, {"message": {"message_id": "x", "date": 1, "chat": {"id": 1}}}):
                    fake._last_update_id += 1
                    fake._queue.append({"update_id": fake._last_update_id, **bad})
                fake._queue.append({"update_id": "not-a-number", "message": {}})
                fake._cond.notify_all()
            fake.send_text(611, "广东能补多少钱")
            reply = await fake.wait_for_async(lambda r: "来源" in plain(r["text"]))
            assert str(reply["chat_id"]) == "611"
            polls = len(fake.calls_to("getUpdates"))
            await asyncio.sleep(1.0)
            assert len(fake.calls_to("getUpdates")) - polls <= 3  # long polls again, not a hot loop

    with caplog.at_level("WARNING"):
        asyncio.run(scenario())
    skipped = [r for r in caplog.records if "skipping" in r.getMessage()]
    assert 1 <= len(skipped) <= 3


# -- a real process, killed ------------------------------------------------------------------------------

def serve_process(cfg: Config, fake: FakeBotApi, port: int):  # type: ignore[no-untyped-def]
    """`qiuxue serve --telegram` polling the fake Bot API, with the staff group."""
    return qiuxue_serve(cfg, port, fake, QIUXUE__HELPDESK__CHAT_ID=str(GROUP), QIUXUE__HELPDESK__AGENTS=f"[{AGENT}]")


def test_kill9_mid_burst_loses_and_doubles_no_worker_message(kb_cfg, fake, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = staff_cfg(kb_cfg, fake, tmp_path)
    questions = ["广东能补多少钱", "厦门能补多少", "浙江怎么申请", "杭州补多少", "山东有名额限制吗", "广州能补多少钱"]
    user = 6201
    with serve_process(cfg, fake, free_port()) as proc:
        for q in questions:
            fake.send_text(user, q)
        fake.wait_for(lambda r: str(r["chat_id"]) == str(user), timeout=60)
        kill9(proc)  # mid-burst: some answered, some received or queued, maybe one in flight
    answered_before = len(fake.sent(user))
    with serve_process(cfg, fake, free_port()):
        deadline = time.monotonic() + 60
        while len(_inbox_done(cfg, user)) < len(questions) or _pending_out(cfg, str(user)):
            assert time.monotonic() < deadline, f"only {len(_inbox_done(cfg, user))} handled"
            time.sleep(0.2)
    replies = [r for r in fake.sent(user)]
    assert len(_inbox_done(cfg, user)) == len(questions)  # every update handled exactly once
    uncertain = len(_rows(cfg, str(user), OutboxStatus.UNCERTAIN))
    texts = [plain(r["text"]) for r in replies]
    assert len(set(texts)) == len(texts), "a reply was sent twice"
    # none lost, except possibly the one on the wire when the process died (then marked uncertain,
    # whether or not it arrived); never a second copy
    assert len(questions) - uncertain <= len(replies) <= len(questions), (answered_before, len(replies), uncertain)
    assert uncertain <= 1


def test_kill9_during_an_agent_relay_never_sends_it_twice(kb_cfg, fake, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = staff_cfg(kb_cfg, fake, tmp_path)
    user, marker = 6301, "请带身份证复印件"
    arrived, release = threading.Event(), threading.Event()
    real_send = fake._methods["sendMessage"]

    def slow_send(params):  # type: ignore[no-untyped-def]
        if marker in str(params.get("text", "")) and not release.is_set():
            arrived.set()
            fake._cond.wait_for(release.is_set, timeout=30)  # the request is on the wire when we kill
        return real_send(params)

    fake.add_method("sendMessage", slow_send)
    with serve_process(cfg, fake, free_port()) as proc:
        fake.send_text(user, "转人工")
        card = fake.wait_for(lambda r: str(r["chat_id"]) == str(GROUP) and "工单 #" in plain(r["text"]), timeout=60)
        fake.send_group_text(GROUP, AGENT, marker, message_thread_id=card["message_thread_id"])
        assert arrived.wait(60)
        kill9(proc)
        with fake._cond:
            release.set()
            fake._cond.notify_all()
    with serve_process(cfg, fake, free_port()):
        fake.wait_for(lambda r: str(r["chat_id"]) == str(GROUP) and "没有送达" in plain(r["text"]), timeout=60)
        time.sleep(1.0)
    assert len([r for r in fake.sent(user) if marker in plain(r["text"])]) == 1
    assert _rows(cfg, str(user), OutboxStatus.UNCERTAIN)


def _inbox_done(cfg: Config, user: int) -> list[InboxItem]:
    with Dialogue(cfg).store.sessions() as s:
        return list(s.scalars(select(InboxItem).where(InboxItem.key == f"telegram:{user}",
                                                      InboxItem.status == "done")))


def _rows(cfg: Config, address: str, status: OutboxStatus) -> list[OutboxItem]:
    with Dialogue(cfg).store.sessions() as s:
        return list(s.scalars(select(OutboxItem).where(OutboxItem.address == address, OutboxItem.status == status)))


def _pending_out(cfg: Config, address: str) -> bool:
    return bool(_rows(cfg, address, OutboxStatus.PENDING) or _rows(cfg, address, OutboxStatus.SENDING))


def test_serve_answers_a_signed_webhook_and_serves_health_and_metrics(kb_cfg, fake, tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    secret = "hook-secret_0123"
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "TELEGRAM_BOT_TOKEN": TOKEN,
           "TELEGRAM_WEBHOOK_SECRET": secret, "QIUXUE__DATA_DIR": str(kb_cfg.data_path),
           "QIUXUE__TELEGRAM__BASE_URL": f"{fake.base_url}/bot", "QIUXUE__TELEGRAM__MODE": "webhook",
           "QIUXUE__TELEGRAM__WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram", "QIUXUE__SERVER__PORT": str(port),
           **FAST}
    no_secret = {k: v for k, v in env.items() if k != "TELEGRAM_WEBHOOK_SECRET"}
    refused = subprocess.run([sys.executable, "-m", "bot.cli", "serve"], cwd=PROJECT, env=no_secret,
                             capture_output=True, timeout=120)
    assert refused.returncode != 0 and b"TELEGRAM_WEBHOOK_SECRET" in refused.stderr  # fails closed
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], cwd=PROJECT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                    health = json.loads(r.read())
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        assert health["database"] == "ok" and health["index_version"] and "telegram" in health["channels"]
        assert fake.webhook_url == f"{base}/telegram" and fake.webhook_secret == secret
        fake.send_text(6401, "广东能补多少钱")
        update = fake.pending_updates()[0]
        assert FakeBotApi.post_update_to(f"{base}/telegram", update, "forged") == 403
        assert FakeBotApi.post_update_to(f"{base}/telegram", update, None) == 403
        bad = urllib.request.Request(f"{base}/telegram", data=b"{not json", method="POST",
                                     headers={"X-Telegram-Bot-Api-Secret-Token": secret})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad, timeout=5)
        assert err.value.code == 400
        assert fake.deliver_webhook() == [200]
        reply = fake.wait_for(lambda r: "来源" in plain(r["text"]), timeout=60)
        assert str(reply["chat_id"]) == "6401"
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert 'qiuxue_messages_in_total{channel="telegram"} 1.0' in text
        assert "qiuxue_reply_seconds_bucket" in text and "qiuxue_open_tickets" in text
    finally:
        proc.terminate()
        proc.wait(20)
