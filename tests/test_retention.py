"""Retention: `/reset` forgets everything about a worker; `qiuxue purge` deletes what is past retention.

Both are checked by scanning every table of the database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import MetaData, select, update

from bot.cli import main as qiuxue
from bot.core.dialogue import Dialogue
from bot.core.messages import Incoming
from bot.core.store import Conversation, TranscriptLine
from bot.helpdesk.store import DraftFaq, Ticket, TicketEvent
from common.clock import utcnow
from common.settings import Config
from tests.conftest import make_config, unique_user

AGENT = "4242"


def rows_mentioning(cfg: Config, *needles: str) -> list[str]:
    """'table: row' for every row of every table that contains one of `needles`."""
    sessions = Dialogue(cfg).store.sessions
    hits = []
    with sessions() as s:
        meta = MetaData()
        meta.reflect(s.get_bind())
        for table in meta.sorted_tables:
            for row in s.execute(select(table)):
                text = " ".join(map(str, row))
                if any(n in text for n in needles):
                    hits.append(f"{table.name}: {text[:120]}")
    return hits


def staffed(db_cfg: Config, tmp_path) -> Config:  # type: ignore[no-untyped-def]
    extra = {"QIUXUE__DATABASE__URL": str(db_cfg.database.url)} if db_cfg.database.url else {}
    return make_config(tmp_path, QIUXUE__DATA_DIR=str(db_cfg.data_path), QIUXUE__HELPDESK__AGENTS=f"[{AGENT}]",
                       **extra)


def handed_over(dialogue: Dialogue, user: str, name: str, question: str) -> int:
    """A worker asks, is handed over, the agent answers and drafts a FAQ entry; returns the ticket id."""
    for text in (question, "转人工"):
        dialogue.handle(Incoming("test", user, text, display_name=name))
    desk = dialogue.helpdesk
    with dialogue.store.sessions() as s:
        ticket_id = s.scalars(select(Ticket.id).where(Ticket.user_id == user)).one()
    desk.claim(ticket_id, AGENT, "agent")
    desk.agent_message(ticket_id, AGENT, "agent", f"答复{name}：请问区总工会。", source=f"m-{user}")
    desk.resolve(ticket_id, AGENT, "agent")
    assert desk.draft_faq(ticket_id, AGENT, "agent") is not None
    return ticket_id


def test_reset_forgets_everything_about_the_worker(db_cfg: Config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = staffed(db_cfg, tmp_path)
    dialogue = Dialogue(cfg)
    user, name = unique_user("forget"), f"王五师傅{unique_user('n')}"
    other = unique_user("keep")
    handed_over(dialogue, user, name, f"{name}想问重庆读大专能补多少钱")
    dialogue.handle(Incoming("test", other, "广东能补多少钱", display_name="赵六"))
    assert rows_mentioning(cfg, name, user)
    dialogue.handle(Incoming("test", user, "/reset", display_name=name))
    assert rows_mentioning(cfg, name, user) == []
    assert rows_mentioning(cfg, other)  # nobody else is forgotten


def test_purge_deletes_transcripts_and_closed_tickets_past_retention(db_cfg: Config, tmp_path, monkeypatch,
                                                                    capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = staffed(db_cfg, tmp_path)
    dialogue = Dialogue(cfg)
    old_user, old_name = unique_user("old"), f"旧工友{unique_user('n')}"
    new_user, new_name = unique_user("new"), f"新工友{unique_user('n')}"
    open_user = unique_user("open")
    old_ticket = handed_over(dialogue, old_user, old_name, f"{old_name}问重庆读大专能补多少钱")
    handed_over(dialogue, new_user, new_name, f"{new_name}问重庆读大专能补多少钱")
    dialogue.handle(Incoming("test", open_user, "转人工", display_name="还在等"))
    long_ago = utcnow() - timedelta(days=400)
    with dialogue.store.sessions.begin() as s:
        for user in (old_user, open_user):
            conv_id = s.scalars(select(Conversation.id).where(Conversation.user_id == user)).one()
            s.execute(update(TranscriptLine).where(TranscriptLine.conversation_id == conv_id)
                      .values(created_at=long_ago))
            s.execute(update(Conversation).where(Conversation.id == conv_id).values(updated_at=long_ago))
        s.execute(update(Ticket).where(Ticket.id == old_ticket).values(resolved_at=long_ago, created_at=long_ago))
    for key, value in (("QIUXUE__DATA_DIR", str(cfg.data_path)), ("QIUXUE__DATABASE__URL", str(cfg.database.url or "")),
                       ("QIUXUE__PRIVACY__RETENTION_DAYS", "365")):
        monkeypatch.setenv(key, value)
    assert qiuxue(["purge", "--json"]) == 0  # the configured default: 365 days
    counts = json.loads(capsys.readouterr().out)
    assert counts["older_than_days"] == 365 and counts["tickets"] >= 1 and counts["transcript_lines"] >= 4
    assert rows_mentioning(cfg, old_name, old_user) == []  # transcript, ticket, its events and draft, the row
    assert rows_mentioning(cfg, new_name)  # recent: kept
    with dialogue.store.sessions() as s:
        waiting = s.scalars(select(Ticket).where(Ticket.user_id == open_user)).one()  # open: never purged
        assert s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == waiting.id)).first() is not None
        assert s.scalars(select(DraftFaq).where(DraftFaq.ticket_id == old_ticket)).first() is None
    assert qiuxue(["purge", "--older-than", "-1"]) == 2  # nothing is deleted on a typo
