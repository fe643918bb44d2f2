"""What a channel cannot do, the core handles: numbered options without buttons (surviving a restart),
a push window that closes, the terminal chat."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

from sqlalchemy import select, update

from bot.channels.inprocess import InProcessChannel, InProcessChat
from bot.channels.terminal import chat
from bot.core.dialogue import Dialogue
from bot.core.hub import Hub
from bot.core.messages import Capabilities
from bot.core.outbox import OutboxItem, OutboxStatus
from bot.core.store import Conversation, TranscriptLine
from bot.helpdesk.store import EventKind, Ticket, TicketEvent
from common.clock import utcnow
from tests.conftest import make_config, unique_user

NO_BUTTONS = {"test": Capabilities(buttons=False)}


def test_a_channel_without_buttons_gets_numbered_options_and_digits_press_them(kb_cfg) -> None:  # type: ignore[no-untyped-def]
    user = unique_user("num")
    w = InProcessChat(Dialogue(kb_cfg, capabilities=dict(NO_BUTTONS)), user)
    w.say("/start")
    assert not w.buttons and "回复数字选择" in w.text and "\n1. " in w.text and "\n2. " in w.text
    w.say("1")  # the first option: consent
    assert "谢谢" in w.text
    w.say("/check")
    assert "1. " in w.text
    again = InProcessChat(Dialogue(kb_cfg, capabilities=dict(NO_BUTTONS)), user)  # a restart
    options = [line for line in w.text.splitlines() if line[:1].isdigit()]
    guangdong = next(line.split(".")[0] for line in options if "广东" in line)
    again.say(guangdong)
    assert "工会会员" in again.text  # the next question of 广东's rules: the digit meant 广东
    again.say("99")  # inside a flow a number goes to the question (it may be an age); here: yes or no
    assert "「是」或「否」" in again.text and "1. 是" in again.text
    again.say("/cancel")
    again.say("/help")
    again.say("99")  # outside a flow, a number that is no option is said to be none
    assert "没有第 99 项" in again.text


def test_a_push_outside_the_channels_window_is_refused_with_the_reason(kb_cfg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = make_config(tmp_path, QIUXUE__DATA_DIR=str(kb_cfg.data_path), QIUXUE__DELIVERY__POLL_SECONDS="0.05",
                      QIUXUE__HELPDESK__AGENTS="[777]")
    phone = InProcessChannel(Capabilities(push_window=timedelta(hours=48)))
    user = unique_user("win")

    async def scenario() -> None:
        hub = Hub(Dialogue(cfg))
        hub.register(phone)
        await hub.start()
        try:
            worker = InProcessChat(hub.dialogue, user)
            await asyncio.to_thread(worker.say, "转人工")
            with hub.sessions.begin() as s:  # the worker last wrote three days ago
                conv = s.scalars(select(Conversation).filter_by(channel="test", user_id=user)).one()
                s.execute(update(TranscriptLine).where(TranscriptLine.conversation_id == conv.id)
                          .values(created_at=utcnow() - timedelta(days=3)))
                ticket = s.scalars(select(Ticket).where(Ticket.user_id == user)).one()
            hub.helpdesk.agent_message(ticket.id, "777", "小李", "你好，还需要帮忙吗？", source="console:1")
            hub.kick()
            for _ in range(100):
                await asyncio.sleep(0.05)
                if _rows(hub, user, OutboxStatus.FAILED):
                    break
        finally:
            await hub.stop()
        failed = _rows(hub, user, OutboxStatus.FAILED)
        assert failed and "48" in failed[0].error and not phone.pushed[user]
        with hub.sessions() as s:
            kinds = [e.kind for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id))]
        assert EventKind.UNDELIVERED in kinds

    asyncio.run(scenario())


def _rows(hub: Hub, user: str, status: OutboxStatus) -> list[OutboxItem]:
    with hub.sessions() as s:
        return list(s.scalars(select(OutboxItem).where(OutboxItem.address == user, OutboxItem.status == status)))


def test_the_terminal_chat_numbers_options_and_takes_digits(kb_cfg) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    assert chat(Dialogue(kb_cfg), unique_user("tty"), io.StringIO("1\n广东能补多少钱\n/quit\n"), out) == 0
    text = out.getvalue()
    assert "1. " in text and "谢谢" in text and "来源" in text
