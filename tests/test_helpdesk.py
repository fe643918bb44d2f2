"""The union helpdesk end to end: hand-off, staff topic, claim, relay both ways, notes, resolve,
a restart in the middle, refusals, and a draft FAQ that becomes an answer after approval."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select

from bot.answering import ANSWER, Answerer
from bot.channels.inprocess import InProcessChat
from bot.cli import main as qiuxue
from bot.core.dialogue import Dialogue
from bot.helpdesk.admin import cluster, gather, unclustered
from bot.helpdesk.store import CLAIMED, RESOLVED, WAITING, DraftFaq, Ticket, TicketEvent
from common.clock import utcnow
from common.settings import Config
from ingest.refresh import refresh
from tests.conftest import FAST, make_config, unique_user
from tests.fakes.telegram_server import FakeBotApi
from tests.test_telegram import Worker, plain, running_bot

GROUP = -1009876543210
AGENT, STRANGER = 777, 888


@pytest.fixture
def hd_cfg(db_cfg: Config, fake: FakeBotApi, tmp_path) -> Config:  # type: ignore[no-untyped-def]
    """The shipped KB with a staffed helpdesk; tickets in SQLite or PostgreSQL (db_cfg's two params)."""
    extra = {"QIUXUE__DATABASE__URL": str(db_cfg.database.url)} if db_cfg.database.url else {}
    return make_config(tmp_path, QIUXUE__DATA_DIR=str(db_cfg.data_path), **extra,
                       QIUXUE__TELEGRAM__BASE_URL=f"{fake.base_url}/bot",
                       QIUXUE__HELPDESK__CHAT_ID=str(GROUP), QIUXUE__HELPDESK__AGENTS=f"[{AGENT}]",
                       QIUXUE__HELPDESK__REANNOUNCE_CHECK_SECONDS="0.2", **FAST,
                       QIUXUE__KNOWLEDGE__APPROVED_DIR=str(tmp_path / "approved"))


def in_group(fake: FakeBotApi, needle: str, after: int = 0):  # type: ignore[no-untyped-def]
    return fake.wait_for_async(lambda r: str(r["chat_id"]) == str(GROUP) and needle in plain(r["text"]), after=after)


def to_worker(fake: FakeBotApi, user: int, needle: str, after: int = 0):  # type: ignore[no-untyped-def]
    return fake.wait_for_async(lambda r: str(r["chat_id"]) == str(user) and needle in plain(r["text"]), after=after)


def ticket_of(cfg: Config, user: int) -> Ticket:
    with Dialogue(cfg).store.sessions() as s:
        return s.scalars(select(Ticket).where(Ticket.user_id == str(user)).order_by(Ticket.id.desc())).first()


def test_the_whole_helpdesk_path(hd_cfg, fake) -> None:  # type: ignore[no-untyped-def]
    user = 701

    async def scenario() -> None:
        async with running_bot(hd_cfg):
            w = Worker(fake, user)
            await w.say("重庆读大专能补多少钱", "重庆")  # not covered → handed over at once
            await to_worker(fake, user, "排第")
            card = await in_group(fake, "工单 #")
            assert "重庆" in plain(card["text"]) and "not covered" in plain(card["text"])
            assert card["message_thread_id"] and FakeBotApi.buttons(card)
            ticket_id = int(plain(card["text"]).split("#")[1].split("（")[0])

            mark = len(fake.calls)
            fake.press_button(STRANGER, card["message_id"], f"hd:claim:{ticket_id}")
            refused = await fake.wait_for_call_async("answerCallbackQuery", after=mark)
            assert "agents only" in refused.get("text", "")
            assert ticket_of(hd_cfg, user).state == WAITING

            fake.press_button(AGENT, card["message_id"], f"hd:claim:{ticket_id}")
            await to_worker(fake, user, "已接手")
            assert ticket_of(hd_cfg, user).state == CLAIMED

            topic = card["message_thread_id"]
            fake.send_group_text(GROUP, AGENT, "重庆目前没有个人补助，建议问区总工会。", message_thread_id=topic)
            reply = await to_worker(fake, user, "建议问区总工会")
            assert "工会服务人员" in plain(reply["text"])

            mark = len(fake.sent())
            fake.send_text(user, "好的，谢谢，区总工会电话是多少？")
            relayed = await in_group(fake, "区总工会电话", after=mark)
            assert relayed["message_thread_id"] == topic
            assert not [r for r in fake.sent(user)[-3:] if "区总工会电话" in plain(r["text"])]  # bot stays quiet

            fake.send_group_text(GROUP, AGENT, "/note 工人在渝北区", message_thread_id=topic)
            await in_group(fake, "内部备注")
            fake.send_group_text(GROUP, STRANGER, "我来回答", message_thread_id=topic)
            await in_group(fake, "agents only")
            assert not [r for r in fake.sent(user) if "渝北" in r["text"] or "我来回答" in r["text"]]

            photo = fake.send_photo(AGENT, caption="申请表样例", chat_id=GROUP, message_thread_id=topic)
            copied = await fake.wait_for_call_async("copyMessage", lambda p: str(p.get("chat_id")) == str(user))
            assert int(copied["message_id"]) == photo  # the agent's photo reached the worker's chat

            mark = len(fake.sent())
            fake.send_group_text(GROUP, AGENT, "/tickets", message_thread_id=topic)
            listing = await in_group(fake, f"#{ticket_id} claimed", after=mark)
            assert "重庆" in plain(listing["text"])

            fake.press_button(AGENT, card["message_id"], f"hd:resolve:{ticket_id}", check_button=False)
            await to_worker(fake, user, "回到了机器人")
            ask_kb = await in_group(fake, "加入知识库")
            fake.press_button(AGENT, ask_kb["message_id"], f"hd:kb:{ticket_id}:1")
            await in_group(fake, "草稿 FAQ")
            await w.say("广东能补多少钱", "来源")  # back with the bot

    asyncio.run(scenario())
    ticket = ticket_of(hd_cfg, user)
    assert ticket.state == RESOLVED
    with Dialogue(hd_cfg).store.sessions() as s:
        kinds = [e.kind for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                                           .order_by(TicketEvent.id))]
        draft = s.scalars(select(DraftFaq).where(DraftFaq.ticket_id == ticket.id)).one()
    assert kinds[:2] == ["opened", "claimed"] and {"agent_message", "worker_message", "note", "resolved",
                                                    "draft_faq"} <= set(kinds)
    assert draft.question == "重庆读大专能补多少钱" and "区总工会" in draft.answer


def test_a_restart_in_the_middle_drops_and_doubles_nothing(hd_cfg, fake) -> None:  # type: ignore[no-untyped-def]
    user = 702

    async def before_restart() -> dict:
        async with running_bot(hd_cfg):
            await Worker(fake, user).say("转人工", "排第")
            card = await in_group(fake, "工单 #")
            ticket_id = ticket_of(hd_cfg, user).id
            fake.press_button(AGENT, card["message_id"], f"hd:claim:{ticket_id}")
            await to_worker(fake, user, "已接手")
            return card

    card = asyncio.run(before_restart())
    # the bot is down: the agent and the worker both write; Telegram keeps the updates
    fake.send_group_text(GROUP, AGENT, "你好，请问你在哪个城市？", message_thread_id=card["message_thread_id"])
    fake.send_text(user, "我在广州")

    async def after_restart() -> None:
        async with running_bot(hd_cfg):
            await to_worker(fake, user, "你在哪个城市")
            await in_group(fake, "我在广州")
            fake.send_text(user, "合同签了两年")
            await in_group(fake, "合同签了两年")

    asyncio.run(after_restart())
    worker_got = [r for r in fake.sent(user) if "你在哪个城市" in plain(r["text"])]
    staff_got = [r for r in fake.sent(GROUP) if "我在广州" in plain(r["text"])]
    assert len(worker_got) == 1 and len(staff_got) == 1
    order = [plain(r["text"]) for r in fake.sent(GROUP) if "👷" in plain(r["text"])]
    assert order.index(next(x for x in order if "我在广州" in x)) < order.index(next(x for x in order if "两年" in x))


def test_unclaimed_tickets_are_announced_again(hd_cfg, fake) -> None:  # type: ignore[no-untyped-def]
    user = 703

    async def scenario() -> None:
        async with running_bot(hd_cfg) as channel:
            await Worker(fake, user).say("老板拖欠工资三个月了怎么办", "排第")  # a union matter: handed over
            await in_group(fake, "工单 #")
            with channel.dialogue.store.sessions.begin() as s:
                ticket = s.scalars(select(Ticket).where(Ticket.user_id == str(user))).one()
                assert "欠薪" in ticket.reason
                ticket.announced_at = utcnow() - timedelta(hours=2)
            await in_group(fake, "还没有人接手")

    asyncio.run(scenario())


def test_worker_can_leave_and_reopen(hd_cfg) -> None:  # type: ignore[no-untyped-def]
    w = InProcessChat(Dialogue(hd_cfg), unique_user())
    w.say("/human")
    assert "排第" in w.text
    w.say("还在吗")
    assert "排第" in w.text  # waiting: told the queue position, message kept for the agent
    w.say("/bot")
    assert "回到了机器人" in w.text
    w.say("广东能补多少钱")
    assert "来源" in w.text
    w.say("转人工")
    with w.dialogue.store.sessions() as s:
        tickets = list(s.scalars(select(Ticket).where(Ticket.user_id == w.user_id)))
    assert len(tickets) == 1 and tickets[0].state == WAITING  # reopened within reopen_hours


def test_two_dislikes_in_a_row_hand_over(hd_cfg) -> None:  # type: ignore[no-untyped-def]
    w = InProcessChat(Dialogue(hd_cfg), unique_user())
    w.say("广东能补多少钱")
    w.press("👎")
    w.say("广州能补多少钱")
    w.press("👎")
    assert "排第" in w.text


def test_an_approved_draft_answers_after_the_next_refresh(hd_cfg, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    question = "求学圆梦的补贴能不能和单位的学费报销一起拿"
    sessions = Dialogue(hd_cfg).store.sessions
    with sessions.begin() as s:
        draft = DraftFaq(ticket_id=0, question=question, answer="要看单位规定，工会补贴本身不限制（服务台答复）。",
                         region=None, created_by="agent")
        s.add(draft)
        s.flush()
        draft_id = draft.id
    assert [src.id for src in Answerer(hd_cfg).ask(question).sources[:1]] != [f"faq-helpdesk-{draft_id}"]
    for key, value in (("QIUXUE__DATA_DIR", str(hd_cfg.data_path)),
                       ("QIUXUE__KNOWLEDGE__APPROVED_DIR", str(hd_cfg.path(hd_cfg.knowledge.approved_dir))),
                       ("QIUXUE__DATABASE__URL", str(hd_cfg.database.url or ""))):
        monkeypatch.setenv(key, value)
    assert qiuxue(["kb", "approve"]) == 0
    assert f"#{draft_id} [draft]" in capsys.readouterr().out
    assert qiuxue(["kb", "approve", str(draft_id)]) == 0
    assert "run `qiuxue ingest`" in capsys.readouterr().out
    cfg = make_config(tmp_path, QIUXUE__DATA_DIR=str(hd_cfg.data_path), QIUXUE__DATABASE__URL=str(hd_cfg.database.url),
                      QIUXUE__KNOWLEDGE__APPROVED_DIR=str(hd_cfg.path(hd_cfg.knowledge.approved_dir)))
    report = refresh(cfg, by="admin")
    assert report.added == 1
    a = Answerer(cfg).ask(question)
    assert a.action == ANSWER and a.sources[0].id == f"faq-helpdesk-{draft_id}" and "服务台答复" in a.answer
    refresh(make_config(tmp_path, QIUXUE__DATA_DIR=str(hd_cfg.data_path),  # leave the KB as it was
                        QIUXUE__DATABASE__URL=str(hd_cfg.database.url)), by="pytest")


def test_report_groups_what_the_bot_could_not_answer(kb_cfg, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Its own database on the shared index (the refresh takes every vector from the cache): the report
    # counts everything in the period, and the session's fuzz tests leave thousands of refusals behind.
    db = f"sqlite:///{tmp_path / 'report.db'}"
    cfg = make_config(tmp_path, QIUXUE__DATA_DIR=str(kb_cfg.data_path), QIUXUE__DATABASE__URL=db)
    refresh(cfg, by="pytest")
    w = InProcessChat(Dialogue(cfg), unique_user())
    for q in ("今天天气怎么样", "今天天气如何", "明天股票涨不涨"):
        w.say(q)
    items = gather(cfg, days=1)
    assert sorted(i["question"] for i in items) == ["今天天气如何", "今天天气怎么样", "明天股票涨不涨"]
    groups = cluster(cfg, items)
    weather = next(g for g in groups if "天气" in g["example"])
    assert weather["count"] == 2 and weather["kinds"] == {"no_answer": 2}
    assert [g["count"] for g in groups] == [2, 1]  # the stock question is a group of its own
    monkeypatch.setenv("QIUXUE__DATA_DIR", str(kb_cfg.data_path))
    monkeypatch.setenv("QIUXUE__DATABASE__URL", db)
    assert qiuxue(["report", "--days", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["items"] == 3 and [g["count"] for g in report["groups"]] == [2, 1]
    assert qiuxue(["report", "--days", "1"]) == 0 and "by region" in capsys.readouterr().out
    # only the most frequent distinct questions are embedded and clustered; the others are counted
    embedded: list[str] = []

    def embed(texts: list[str]) -> np.ndarray:
        embedded.extend(texts)
        return np.eye(len(texts), 4, dtype=np.float32)

    stock = next(i for i in items if i["question"] == "明天股票涨不涨")
    many = [*items, dict(stock), dict(stock)]
    top = cluster(cfg, many, embed=embed, most=1)
    assert embedded == ["明天股票涨不涨"] and [g["count"] for g in top] == [3] and unclustered(many, top) == 2


def test_office_hours_and_union_topics(kb_cfg) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from bot.helpdesk.service import Helpdesk
    from common.db import open_database

    desk = Helpdesk(kb_cfg, open_database(kb_cfg))
    shanghai = ZoneInfo("Asia/Shanghai")
    monday_10 = datetime(2026, 11, 30, 10, 0, tzinfo=shanghai)
    friday_19 = datetime(2026, 12, 4, 19, 0, tzinfo=shanghai)
    assert desk.in_office(monday_10) and not desk.in_office(friday_19)
    assert desk.next_opening(friday_19) == datetime(2026, 12, 7, 9, 0, tzinfo=shanghai)  # Monday 09:00
    assert desk.union_topic("公司拖欠工资三个月") and desk.union_topic("上班时受伤了算工伤吗")
    assert desk.union_topic("辞职了还能领吗") is None  # leaving a job is a policy question, not dismissal


def test_every_staff_press_is_answered_once_and_only_agents_act(hd_cfg, fake) -> None:  # type: ignore[no-untyped-def]
    user = 704

    async def scenario() -> None:
        async with running_bot(hd_cfg):
            await Worker(fake, user).say("转人工", "排第")
            card = await in_group(fake, "工单 #")
            ticket_id = ticket_of(hd_cfg, user).id
            for presser, data, needle in ((AGENT, "hd:claim", "expired"),
                                          (AGENT, "hd:claim:99999999999999999999", "expired"),
                                          (AGENT, "hd:claim:2147483000", "no such ticket"),
                                          (STRANGER, f"hd:kb:{ticket_id}:1", "agents only"),
                                          (STRANGER, f"hd:resolve:{ticket_id}", "agents only")):
                mark = len(fake.calls)
                query_id = fake.press_button(presser, card["message_id"], data, check_button=False)
                answer = await fake.wait_for_call_async("answerCallbackQuery",
                                                        lambda p, q=query_id: p.get("callback_query_id") == q,
                                                        after=mark)
                assert needle in answer.get("text", ""), (data, answer)
                await asyncio.sleep(0.3)
                answers = [p for m, p in fake.calls[mark:] if m == "answerCallbackQuery"
                           and p.get("callback_query_id") == query_id]
                assert len(answers) == 1, (data, answers)
            assert ticket_of(hd_cfg, user).state == WAITING  # nobody but an agent changed it
            mark = len(fake.sent())
            fake.send_group_text(GROUP, STRANGER, "/tickets", message_thread_id=card["message_thread_id"])
            await in_group(fake, "agents only", after=mark)
            assert not [r for r in fake.sent(GROUP)[mark:] if f"#{ticket_id} waiting" in plain(r["text"])]

    asyncio.run(scenario())
