"""Retention: what is kept about a worker, and for how long.

- `purge(cfg, days)` (`qiuxue purge --older-than DAYS`, default `privacy.retention_days`) deletes
  transcript lines and feedback older than that, resolved tickets resolved before then (with their
  events and unapproved drafts), and conversations idle since then with nothing left.
  Handled inbox rows and finished outbox rows older than that go too.
- `forget_worker` (the worker's `/reset`) deletes everything about one worker: conversation,
  transcript, feedback, tickets (their copies of the name), ticket events, unapproved drafts, and
  the worker's inbox and outbox rows (the staff side's rows of their tickets too).
Approved drafts are knowledge-base content (already masked) and stay.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from bot.core.inbox import InboxItem, InboxStatus
from bot.core.outbox import FINAL, OutboxItem
from bot.core.store import Conversation, Feedback, TranscriptLine
from bot.helpdesk.store import RESOLVED, DraftFaq, Ticket, TicketEvent
from common.clock import utcnow
from common.db import open_database
from common.settings import Config


def _delete_tickets(s: Session, ticket_ids: list[int]) -> int:
    if not ticket_ids:
        return 0
    events = select(TicketEvent.id).where(TicketEvent.ticket_id.in_(ticket_ids))
    s.execute(delete(OutboxItem).where(OutboxItem.ticket_event_id.in_(events)))
    s.execute(delete(DraftFaq).where(DraftFaq.ticket_id.in_(ticket_ids), DraftFaq.status != "approved"))
    s.execute(delete(TicketEvent).where(TicketEvent.ticket_id.in_(ticket_ids)))
    s.execute(delete(Ticket).where(Ticket.id.in_(ticket_ids)))
    return len(ticket_ids)


def forget_worker(s: Session, channel: str, user_id: str) -> str | None:
    """Delete everything about one worker; returns the language they used, or None if nothing was kept."""
    conv = s.scalars(select(Conversation).filter_by(channel=channel, user_id=user_id)).first()
    tickets = list(s.scalars(select(Ticket.id).where(
        (Ticket.channel == channel) & (Ticket.user_id == user_id)
        | (Ticket.conversation_id == (conv.id if conv else -1)))))
    _delete_tickets(s, tickets)
    s.execute(delete(OutboxItem).where(OutboxItem.channel == channel, OutboxItem.address == user_id))
    s.execute(delete(InboxItem).where(InboxItem.key == f"{channel}:{user_id}"))
    if conv is None:
        return None
    for table in (TranscriptLine, Feedback):
        s.execute(delete(table).where(table.conversation_id == conv.id))
    s.delete(conv)
    return conv.lang


def forget(sessions: sessionmaker, channel: str, user_id: str) -> str | None:
    """`forget_worker` in its own transaction (the worker's /reset)."""
    with sessions.begin() as s:
        return forget_worker(s, channel, user_id)


def purge(cfg: Config, days: float) -> dict[str, int]:
    """Delete what is older than `days`; returns how many rows of each kind went."""
    cutoff = utcnow() - timedelta(days=days)
    with open_database(cfg).begin() as s:
        lines = s.execute(delete(TranscriptLine).where(TranscriptLine.created_at < cutoff)).rowcount
        feedback = s.execute(delete(Feedback).where(Feedback.created_at < cutoff)).rowcount
        old = list(s.scalars(select(Ticket.id).where(Ticket.state == RESOLVED, Ticket.resolved_at < cutoff)))
        tickets = _delete_tickets(s, old)
        s.execute(delete(InboxItem).where(InboxItem.created_at < cutoff, InboxItem.status != InboxStatus.PENDING))
        s.execute(delete(OutboxItem).where(OutboxItem.created_at < cutoff, OutboxItem.status.in_(FINAL)))
        idle = [c for c in s.scalars(select(Conversation).where(Conversation.updated_at < cutoff))
                if s.scalar(select(Ticket.id).where(Ticket.conversation_id == c.id).limit(1)) is None
                and s.scalar(select(TranscriptLine.id).where(TranscriptLine.conversation_id == c.id).limit(1)) is None]
        for conv in idle:
            s.delete(conv)
    return {"transcript_lines": lines, "feedback": feedback, "tickets": tickets, "conversations": len(idle)}


def cmd_purge(cfg: Config, args: argparse.Namespace) -> int:
    days = args.older_than if args.older_than is not None else cfg.privacy.retention_days
    if days < 0:
        print("--older-than must be 0 or more days")
        return 2
    counts = purge(cfg, days)
    if args.json:
        print(json.dumps({"older_than_days": days, **counts}))
    else:
        print(f"purged data older than {days:g} days: " + ", ".join(f"{v} {k.replace('_', ' ')}"
                                                                    for k, v in counts.items()))
    return 0
