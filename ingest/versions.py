"""Index versions in the database: what each build holds, who made it, and which one is live.

A build writes a `building` row, then `complete` once it has passed the smoke check, and only
then moves the single `live` pointer to it, in one transaction. Rollback moves the pointer back.
Readers (the running bot) poll `live_version()`; it is one indexed primary-key read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from common.clock import utcnow
from common.db import Base

BUILDING, COMPLETE, FAILED, DELETED = "building", "complete", "failed", "deleted"


class KbVersion(Base):
    __tablename__ = "kb_versions"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=BUILDING)
    collection: Mapped[str] = mapped_column(String(128))
    embedder: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    documents: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    # {"added": n, "updated": n, "removed": n, "unchanged": n, "errors": [...], "note": "..."}
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # {doc_id: {"hash": ..., "path": ..., "chunks": n}} — what incremental refresh diffs against
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class KbPointer(Base):
    __tablename__ = "kb_pointer"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)  # always "live"
    version: Mapped[str] = mapped_column(String(64))
    switched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    switched_by: Mapped[str] = mapped_column(String(200), default="")


def live_version(sessions: sessionmaker) -> KbVersion | None:
    with sessions() as s:
        pointer = s.get(KbPointer, "live")
        return s.get(KbVersion, pointer.version) if pointer else None


def set_live(session: Session, version: str, by: str) -> None:
    pointer = session.get(KbPointer, "live")
    if pointer is None:
        session.add(KbPointer(name="live", version=version, switched_by=by))
    else:
        pointer.version, pointer.switched_at, pointer.switched_by = version, utcnow(), by


def all_versions(sessions: sessionmaker) -> list[KbVersion]:
    with sessions() as s:
        return list(s.scalars(select(KbVersion).order_by(KbVersion.created_at.desc())))
