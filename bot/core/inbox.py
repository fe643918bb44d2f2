"""The inbox: every message a channel receives is stored here before the platform is told it arrived.

A row is keyed by the platform's own id (Telegram update_id, WeChat MsgId …), so a message the
platform delivers again — after a restart, a retry, or to another process — is recognised and
handled once. Rows are grouped by `key` (one worker's conversation, or a staff side), and the
rows of one key are handled strictly in order: the platform's own sequence (`seq`, Telegram's
update_id) where it has one, else arrival in the inbox — so two updates of one worker that reach
two processes at the same moment are still handled in the order the platform sent them: see
`bot/core/hub.py`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, Text, UniqueConstraint, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from common.clock import utcnow
from common.db import Base


class InboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # handling raised: recorded, never retried in a loop


class InboxKind(StrEnum):
    WORKER = "worker"      # payload: an Incoming, for the dialogue core
    PLATFORM = "platform"  # payload: the platform's own update, handled by its channel (e.g. a staff group)


class InboxItem(Base):
    __tablename__ = "inbox"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(16), default=InboxKind.WORKER)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the platform's order (update_id), if any
    status: Mapped[str] = mapped_column(String(16), default=InboxStatus.PENDING, index=True)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Inbox:
    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def accept(self, channel: str, external_id: str, key: str, payload: dict[str, Any],
               kind: InboxKind = InboxKind.WORKER, seq: int | None = None) -> bool:
        """Store a received message durably; False if this platform id was stored before (a re-delivery)."""
        try:
            with self.sessions.begin() as s:
                s.add(InboxItem(channel=channel, external_id=str(external_id)[:128], key=key[:200], kind=kind,
                                payload=payload, seq=seq))
            return True
        except IntegrityError:
            return False

    def find(self, channel: str, external_id: str) -> int | None:
        """The id of the row stored for this platform id, if any."""
        with self.sessions() as s:
            return s.scalar(select(InboxItem.id).where(InboxItem.channel == channel,
                                                       InboxItem.external_id == str(external_id)[:128]))

    def finished(self, item_id: int) -> bool:
        """Handled (or failed, or deleted by /reset): nothing more will come of it."""
        with self.sessions() as s:
            status = s.scalar(select(InboxItem.status).where(InboxItem.id == item_id))
            return status != InboxStatus.PENDING

    def pending_keys(self, limit: int = 100, before: datetime | None = None) -> list[str]:
        """Keys with waiting messages, the longest-waiting first; with `before`, only messages stored earlier."""
        stored_before = [InboxItem.created_at < before] if before is not None else []
        with self.sessions() as s:
            rows = s.execute(select(InboxItem.key, func.min(InboxItem.id).label("first"))
                             .where(InboxItem.status == InboxStatus.PENDING, *stored_before)
                             .group_by(InboxItem.key).order_by("first").limit(limit)).all()
            return [r[0] for r in rows]

    @staticmethod
    def oldest(session: Session, key: str) -> InboxItem | None:
        """The key's first waiting message: in the platform's order (`seq`), else in arrival order. One key's
        rows come from one channel, so they all have a `seq` or none do."""
        return session.scalars(select(InboxItem).where(InboxItem.key == key, InboxItem.status == InboxStatus.PENDING)
                               .order_by(InboxItem.seq, InboxItem.id).limit(1)).first()

    @staticmethod
    def finish(item: InboxItem, error: str = "") -> None:
        item.status = InboxStatus.FAILED if error else InboxStatus.DONE
        item.error, item.done_at = error[:2000], utcnow()

    def fail(self, item_id: int, error: str) -> None:
        with self.sessions.begin() as s:
            item = s.get(InboxItem, item_id)
            if item is not None and item.status == InboxStatus.PENDING:
                self.finish(item, error or "failed")

    def count(self, status: InboxStatus = InboxStatus.PENDING) -> int:
        with self.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(InboxItem).where(InboxItem.status == status)) or 0)
