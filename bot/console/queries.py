"""What the console's inbox pages show, read from the helpdesk tables (all changes go through the service).

- `queue`: one tab of tickets (waiting / claimed / mine / resolved) with waiting time and reason.
- `ticket_view`: a ticket's transcript, collected facts and eligibility result, its events, and for each
  message relayed to the worker the delivery status of its outbox row (sent / failed and why / pending).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from bot.core.outbox import OutboxItem, OutboxKind
from bot.core.store import TranscriptLine
from bot.helpdesk.store import CLAIMED, RESOLVED, WAITING, DraftFaq, EventKind, Ticket, TicketEvent
from common.clock import aware, utcnow

TABS = ("waiting", "claimed", "mine", "resolved")
RELAYED = (EventKind.AGENT_MESSAGE, EventKind.AGENT_PHOTO)
DELIVERY = {"sent": "已送达 · delivered", "failed": "发送失败 · failed", "pending": "发送中 · sending",
            "sending": "发送中 · sending", "uncertain": "不确定 · uncertain"}


@dataclass
class Row:
    ticket: Ticket
    waited: str  # "12 分钟 · min" since the ticket was opened (or reopened)
    last_message: str = ""


@dataclass
class EventView:
    event: TicketEvent
    delivery: str = ""       # for messages relayed to the worker: its outbox row's status
    delivery_state: str = ""  # sent | failed | pending | uncertain (a CSS class)
    error: str = ""


@dataclass
class TicketView:
    ticket: Ticket
    lines: list[TranscriptLine]
    events: list[EventView]
    facts: dict[str, Any]
    eligibility: str
    drafts: list[DraftFaq] = field(default_factory=list)
    waited: str = ""


def duration(since: datetime | None, now: datetime | None = None) -> str:
    if since is None:
        return ""
    minutes = int(((now or utcnow()) - aware(since)).total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} 分钟 · min"
    if minutes < 48 * 60:
        return f"{minutes // 60} 小时 · h {minutes % 60} 分 · min"
    return f"{minutes // 1440} 天 · days"


def queue(sessions: sessionmaker, tab: str, staff_id: str, limit: int = 200) -> list[Row]:
    query = select(Ticket)
    if tab == "waiting":
        query = query.where(Ticket.state == WAITING).order_by(Ticket.id)
    elif tab == "claimed":
        query = query.where(Ticket.state == CLAIMED).order_by(Ticket.id)
    elif tab == "mine":
        query = query.where(Ticket.state == CLAIMED, Ticket.agent == staff_id).order_by(Ticket.id)
    else:
        query = query.where(Ticket.state == RESOLVED).order_by(Ticket.resolved_at.desc())
    now = utcnow()
    with sessions() as s:
        tickets = list(s.scalars(query.limit(limit)))
        last = dict(s.execute(select(TicketEvent.ticket_id, func.max(TicketEvent.created_at))
                              .where(TicketEvent.ticket_id.in_([x.id for x in tickets]),
                                     TicketEvent.kind == EventKind.WORKER_MESSAGE)
                              .group_by(TicketEvent.ticket_id)).all()) if tickets else {}
    return [Row(x, duration(x.announced_at if x.state == WAITING else x.created_at, now)
                if x.state != RESOLVED else "", duration(last.get(x.id), now)) for x in tickets]


def counts(sessions: sessionmaker, staff_id: str) -> dict[str, int]:
    with sessions() as s:
        by_state = dict(s.execute(select(Ticket.state, func.count()).group_by(Ticket.state)).all())
        mine = s.scalar(select(func.count()).select_from(Ticket).where(Ticket.state == CLAIMED,
                                                                       Ticket.agent == staff_id))
    return {"waiting": by_state.get(WAITING, 0), "claimed": by_state.get(CLAIMED, 0), "mine": int(mine or 0),
            "resolved": by_state.get(RESOLVED, 0)}


def ticket_view(sessions: sessionmaker, ticket_id: int, lines: int = 60) -> TicketView | None:
    with sessions() as s:
        ticket = s.get(Ticket, ticket_id)
        if ticket is None:
            return None
        transcript = list(s.scalars(select(TranscriptLine)
                                    .where(TranscriptLine.conversation_id == ticket.conversation_id)
                                    .order_by(TranscriptLine.id.desc()).limit(lines)))[::-1]
        events = list(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
                                .order_by(TicketEvent.id)))
        relayed = [e.id for e in events if e.kind in RELAYED]
        rows = {r.ticket_event_id: r for r in s.scalars(select(OutboxItem).where(
            OutboxItem.ticket_event_id.in_(relayed), OutboxItem.kind.in_([OutboxKind.PUSH, OutboxKind.COPY])))} \
            if relayed else {}
        drafts = list(s.scalars(select(DraftFaq).where(DraftFaq.ticket_id == ticket_id).order_by(DraftFaq.id)))
    views = []
    for e in events:
        row = rows.get(e.id)
        if e.kind in RELAYED and row is not None:
            views.append(EventView(e, DELIVERY.get(row.status, row.status), row.status,
                                   row.error if row.status in ("failed", "uncertain") else ""))
        else:
            views.append(EventView(e))
    facts = {k: v for k, v in (ticket.facts or {}).items() if v not in (None, "", [], {})}
    eligibility = str(facts.pop("eligibility", "") or "")
    return TicketView(ticket, transcript, views, facts, eligibility, drafts,
                      duration(ticket.announced_at if ticket.state == WAITING else ticket.created_at))
