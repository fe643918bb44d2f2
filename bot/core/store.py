"""Conversation state, transcript and feedback, persisted through SQLAlchemy (SQLite or PostgreSQL).

Every incoming message is handled inside one transaction that holds the conversation row:
`SELECT … FOR UPDATE` on PostgreSQL serialises bot processes that share the database, and a
version counter makes any lost update (e.g. on SQLite) fail loudly and be retried instead of
silently overwriting another process's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from bot.core.redact import redact
from common.clock import utcnow
from common.db import Base


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    lang: Mapped[str] = mapped_column(String(8), default="zh")
    consent: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # eligibility profile
    flow: Mapped[str | None] = mapped_column(String(32), nullable=True)  # check | apply | None
    flow_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    guide_progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # per place: step, docs
    dislikes_in_a_row: Mapped[int] = mapped_column(Integer, default=0)
    # the button data of the numbered options shown last, for channels without buttons ("回复 1 …")
    choices: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # the times of the worker's recent messages: the flood window, shared by every process (`ratelimit.py`)
    recent: Mapped[list[float]] = mapped_column(JSON, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}


class TranscriptLine(Base):
    __tablename__ = "transcript"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(4))  # in | out
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # action, sources, region …
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    answer_line_id: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    vote: Mapped[int] = mapped_column(Integer)  # +1 / -1
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


RETRYABLE = (IntegrityError, StaleDataError)


class ConversationStore:
    """Load-modify-save of one conversation per incoming message, safely across processes."""

    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    @contextmanager
    def locked(self, channel: str, user_id: str) -> Iterator[tuple[Session, Conversation]]:
        """The conversation row, locked for this transaction (created on first contact).

        Raises `RETRYABLE` errors when another process won a race; callers retry the message.
        """
        with self.sessions() as session, session.begin():
            conv = session.scalars(select(Conversation).filter_by(channel=channel, user_id=user_id)
                                   .with_for_update()).first()
            if conv is None:
                conv = Conversation(channel=channel, user_id=user_id, facts={}, flow_state={}, guide_progress={},
                                    choices=[], recent=[])
                session.add(conv)
                session.flush()
            yield session, conv

    @staticmethod
    def log(session: Session, conv: Conversation, direction: str, text: str, **meta: Any) -> TranscriptLine:
        line = TranscriptLine(conversation_id=conv.id, direction=direction, text=redact(text), meta=meta)
        session.add(line)
        session.flush()
        return line

    def forget(self, channel: str, user_id: str) -> str | None:
        """Delete the conversation, its transcript and feedback (the worker's /reset).

        Returns the language the worker used, or None if there was nothing to delete.
        """
        with self.sessions.begin() as s:
            conv = s.scalars(select(Conversation).filter_by(channel=channel, user_id=user_id)).first()
            if conv is None:
                return None
            lang = conv.lang
            for table in (TranscriptLine, Feedback):
                s.execute(delete(table).where(table.conversation_id == conv.id))
            s.delete(conv)
            return lang

    def transcript(self, channel: str, user_id: str) -> list[TranscriptLine]:
        with self.sessions() as s:
            conv = s.scalars(select(Conversation).filter_by(channel=channel, user_id=user_id)).first()
            if conv is None:
                return []
            return list(s.scalars(select(TranscriptLine).where(TranscriptLine.conversation_id == conv.id)
                                  .order_by(TranscriptLine.id)))
