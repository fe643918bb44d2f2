"""Helpdesk tables: tickets, their audit log of events, and draft FAQ entries agents propose.

Every change to a ticket is a `TicketEvent`. Messages relayed between a worker and an agent are
events too, with `delivered` set once the other side has them: after a restart the relay sends
what is still undelivered, and `source` (the channel's message id) makes a re-delivered update
a no-op, so nothing is dropped or doubled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.clock import utcnow
from common.db import Base


class TicketState(StrEnum):
    WAITING = "waiting"
    CLAIMED = "claimed"
    RESOLVED = "resolved"


WAITING, CLAIMED, RESOLVED = TicketState.WAITING, TicketState.CLAIMED, TicketState.RESOLVED


class EventKind(StrEnum):
    OPENED = "opened"
    REOPENED = "reopened"
    ANNOUNCED = "announced"
    CLAIMED = "claimed"
    RESOLVED = "resolved"
    WORKER_LEFT = "worker_left"
    WORKER_MESSAGE = "worker_message"
    AGENT_MESSAGE = "agent_message"
    AGENT_PHOTO = "agent_photo"
    NOTE = "note"
    DRAFT_FAQ = "draft_faq"
    UNDELIVERED = "undelivered"  # a relayed message the platform refused; the agent is told why


class HandoffReason(StrEnum):
    WORKER_ASKED = "worker asked"
    NOT_COVERED = "not covered"
    DISLIKES = "two 👎 in a row"
    UNION_TOPIC = "union topic"  # detail: the topic's reason from knowledge/dictionary/handoff.yaml


@dataclass(frozen=True)
class Handoff:
    """Why a conversation goes to a person; `label` is what the ticket and the report show."""

    reason: HandoffReason
    detail: str = ""

    @property
    def label(self) -> str:
        if self.reason == HandoffReason.UNION_TOPIC:
            return self.detail
        return f"{self.reason.value}: {self.detail}" if self.detail else self.reason.value


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default=WAITING, index=True)
    agent: Mapped[str | None] = mapped_column(String(128), nullable=True)
    agent_name: Mapped[str] = mapped_column(String(200), default="")
    topic_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # staff-group topic
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what the bot had collected
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    announced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TicketEvent(Base):
    __tablename__ = "ticket_events"
    __table_args__ = (UniqueConstraint("ticket_id", "kind", "source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    # opened | reopened | announced | claimed | resolved | worker_left | worker_message | agent_message
    # | agent_photo | note | draft_faq | refused
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str | None] = mapped_column(String(128), nullable=True)  # channel message id, for dedupe
    delivered: Mapped[bool] = mapped_column(Boolean, default=True)  # relayed messages start False
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DraftFaq(Base):
    __tablename__ = "draft_faq"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(Integer, index=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | approved | rejected
    created_by: Mapped[str] = mapped_column(String(200), default="")
    approved_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
