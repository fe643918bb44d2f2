"""`qiuxue serve --workers 2`: two real serving processes on one port, sharing PostgreSQL and a Chroma server,
Telegram in webhook mode. Updates spread over both are each answered exactly once (re-deliveries included),
helpdesk relays go out once, and only the primary process registers the webhook."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.core.dialogue import Dialogue
from bot.core.inbox import InboxItem, InboxStatus
from bot.core.outbox import OutboxItem, OutboxStatus
from bot.core.store import Conversation, TranscriptLine
from bot.helpdesk.store import Ticket
from ingest.refresh import refresh
from tests.cluster import chroma_server, fresh_database, serve_processes
from tests.conftest import FAST, make_config
from tests.fakes.telegram_server import FakeBotApi
from tests.serving import TOKEN, free_port
from tests.test_helpdesk import AGENT, GROUP
from tests.test_telegram import plain

pytestmark = pytest.mark.slow
SECRET = "two-process-secret_01"
QUESTIONS = ["广东能补多少钱", "申请需要什么材料", "学费补助什么时候发", "求学圆梦行动是什么"]


def _post_all(url: str, updates: list[dict], secret: str) -> list[int]:
    """POST every update as Telegram would, 8 at a time, each on its own connection (spread by the kernel)."""
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda u: FakeBotApi.post_update_to(url, u, secret), updates))


def _wait(predicate, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_two_processes_answer_each_update_once_and_relay_once(small_kb: Path, fake: FakeBotApi,
                                                             tmp_path: Path) -> None:
    chroma_port, port = free_port(), free_port()
    with fresh_database() as url, chroma_server(tmp_path / "chroma", chroma_port):
        overrides = {"QIUXUE__DATABASE__URL": url, "QIUXUE__INDEX__MODE": "http",
                     "QIUXUE__KNOWLEDGE__PATHS": json.dumps([str(small_kb)]),  # a small KB: little model time
                     "QIUXUE__INDEX__PORT": str(chroma_port), "QIUXUE__HELPDESK__CHAT_ID": str(GROUP),
                     "QIUXUE__HELPDESK__AGENTS": f"[{AGENT}]", "QIUXUE__SERVER__PORT": str(port),
                     "QIUXUE__SERVER__CHANNELS": '["telegram"]', "QIUXUE__TELEGRAM__MODE": "webhook",
                     "QIUXUE__TELEGRAM__BASE_URL": f"{fake.base_url}/bot",
                     "QIUXUE__TELEGRAM__WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram", **FAST}
        cfg = make_config(tmp_path, **overrides)
        assert refresh(cfg, by="pytest").switched
        env = {**os.environ, **overrides, "QIUXUE__DATA_DIR": str(cfg.data_path),
               "QIUXUE__CHAT__RATE_LIMIT_MESSAGES": "1000", "TELEGRAM_BOT_TOKEN": TOKEN,
               "TELEGRAM_WEBHOOK_SECRET": SECRET, "NO_PROXY": "127.0.0.1,localhost"}
        hook = f"http://127.0.0.1:{port}/telegram"
        users = list(range(8100, 8116))
        with serve_processes(env, port, workers=2):
            assert len(fake.calls_to("setWebhook")) == 1  # only the primary registers the webhook
            for round_ in range(2):
                for user in users:
                    fake.send_text(user, QUESTIONS[(user + round_) % len(QUESTIONS)])
                updates = fake.pending_updates()[-len(users):]
                statuses = _post_all(hook, updates + updates, SECRET)  # every update delivered twice
                assert statuses == [200] * (2 * len(users))
                _wait(lambda r=round_: all(len(_answers(fake, u)) >= r + 1 for u in users))
            fake.send_text(users[0], "转人工")
            assert _post_all(hook, fake.pending_updates()[-1:], SECRET) == [200]
            _wait(lambda: any("工单 #" in plain(m["text"]) for m in fake.sent(GROUP)))
            sessions = Dialogue(cfg).store.sessions
            _wait(lambda: _unfinished(sessions) == 0)
            time.sleep(1.0)  # anything sent twice would show up by now
        with sessions() as s:
            rows = list(s.scalars(select(OutboxItem)))
            inbox = list(s.scalars(select(InboxItem)))
            tickets = set(s.scalars(select(Ticket.id)))
            incoming = Counter(s.execute(select(Conversation.user_id).join(
                TranscriptLine, TranscriptLine.conversation_id == Conversation.id)
                .where(TranscriptLine.direction == "in")).scalars())
    assert {r.status for r in rows} == {OutboxStatus.SENT}
    assert len({r.claimed_by for r in rows}) == 2  # both processes delivered
    assert len(inbox) == 2 * len(users) + 1 and {i.status for i in inbox} == {InboxStatus.DONE}
    assert all(incoming[str(u)] == 2 for u in users[1:]) and incoming[str(users[0])] == 3  # no update handled twice
    per_chat = Counter(str(r.address) for r in rows if r.channel == "telegram")
    for user in users:  # the platform got each reply exactly once (no double sends)
        assert len(fake.sent(user)) == per_chat[str(user)]
    cards = Counter(int(found.group(1)) for m in fake.sent(GROUP) if m["method"] == "sendMessage"
                    if (found := re.match(r"工单 #(\d+)", plain(m["text"]))))
    assert set(cards) == tickets and set(cards.values()) == {1}  # each ticket's card went to the staff group once


def _answers(fake: FakeBotApi, user: int) -> list[dict]:
    return fake.sent(user)


def _unfinished(sessions) -> int:  # type: ignore[no-untyped-def]
    """Messages not yet handled plus replies not yet delivered."""
    with sessions() as s:
        waiting = s.scalar(select(func.count()).select_from(InboxItem).where(InboxItem.status == InboxStatus.PENDING))
        sending = s.scalar(select(func.count()).select_from(OutboxItem)
                           .where(OutboxItem.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING])))
        return int(waiting or 0) + int(sending or 0)
