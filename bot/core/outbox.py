"""The outbox: every reply and relayed helpdesk message, written in the same transaction as the turn
(or ticket event) that made it, and marked delivered only when the platform confirmed it.

States: pending → sending → sent | failed | uncertain. A row is marked `sending` (committed) before
the platform is called, so a restart never sends it twice; a row found `sending` after a crash is
`uncertain`: the platform may or may not have it (the residual window is the platform call itself,
typically tens of milliseconds). A permanent refusal (blocked bot, deleted topic, a channel that
cannot do this, a closed reply window) is `failed` with the reason, at once; a transient one
(network, 429) is retried with exponential backoff. One address's rows go out in order; a failed
row never holds up another address, nor later rows of its own.

Several serving processes share one outbox: a claim is a compare-and-set (on PostgreSQL one
`UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`, so processes never wait on each other's
rows), and records the claiming slot (`claimed_by`), so a restarted slot marks only its own dead
predecessor's sends `uncertain`, never a live sibling's.

Passive replies (a channel whose platform request can carry the answer, like WeChat's): the turn's
rows are linked to their inbox row and held (`not_before`) for the channel's reply budget. The
channel's request handler takes them with `take_passive` — one compare-and-set from `pending` to
`sending` while the hold lasts — and the delivery loop can only claim them once the hold is over, so
each row goes out exactly once: in the HTTP response, or through the platform's API, never both. A
taken row becomes `sent` (`confirm_passive`) only once the response has been written; a process
killed in between leaves it `sending`, and the restart makes it `uncertain` like any other send. If
the platform then asks again for the same message (WeChat re-posts a callback it got no answer to),
that proves the response never arrived: `retake_lost_passive` puts such rows back on hold for the
new request (or the API) — one compare-and-set, so only one retry gets them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, func, select, update
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column, sessionmaker

from common.clock import utcnow
from common.db import Base


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"


FINAL = (OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.UNCERTAIN)
PASSIVE = "passive"  # platform_ref of a part answered in the platform's own request


class OutboxKind(StrEnum):
    REPLY = "reply"              # the bot's answer to what the worker just wrote
    PUSH = "push"                # to a worker who did not just write: agent reply, queue news, …
    COPY = "copy"                # a platform message copied as is (an agent's photo) — same-platform only
    STAFF_CARD = "staff_card"    # a ticket's summary card on the staff side (opens its topic)
    STAFF_TEXT = "staff_text"    # a line in the ticket's staff topic


class OutboxItem(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(32), index=True)
    address: Mapped[str] = mapped_column(String(128))  # worker id on that channel, or a ticket id on a staff side
    kind: Mapped[str] = mapped_column(String(16), default=OutboxKind.REPLY)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # text, buttons, link, …
    ticket_event_id: Mapped[int | None] = mapped_column(ForeignKey("ticket_events.id", ondelete="SET NULL"),
                                                        nullable=True, index=True)
    inbox_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # the message it answers
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    error: Mapped[str] = mapped_column(Text, default="")
    platform_ref: Mapped[str] = mapped_column(String(200), default="")  # the platform's message id(s)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    claimed_by: Mapped[str] = mapped_column(String(128), default="", server_default="")  # serving slot sending it


class _Lost(Exception):
    """A passive take found a row no longer held (rolls the take back)."""


@dataclass(frozen=True)
class Claimed:
    id: int
    channel: str
    address: str
    kind: str
    payload: dict[str, Any]
    ticket_event_id: int | None
    attempts: int
    platform_ref: str = ""  # parts of a multi-part message already sent by an earlier attempt


class Outbox:
    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    @staticmethod
    def add(session: Session, channel: str, address: str, payload: dict[str, Any],
            kind: OutboxKind = OutboxKind.REPLY, ticket_event_id: int | None = None,
            inbox_id: int | None = None, not_before: datetime | None = None) -> OutboxItem:
        item = OutboxItem(channel=channel, address=str(address), kind=kind, payload=payload,
                          ticket_event_id=ticket_event_id, inbox_id=inbox_id, not_before=not_before or utcnow())
        session.add(item)
        session.flush()
        return item

    def held(self, inbox_id: int) -> list[Claimed]:
        """The replies to one inbox row that still wait for a passive answer (pending, hold not over), in order."""
        with self.sessions() as s:
            rows = s.scalars(select(OutboxItem).where(OutboxItem.inbox_id == inbox_id,
                                                      OutboxItem.status == OutboxStatus.PENDING,
                                                      OutboxItem.platform_ref == "",
                                                      OutboxItem.not_before > utcnow())
                             .order_by(OutboxItem.id))
            return [Claimed(r.id, r.channel, r.address, r.kind, dict(r.payload), r.ticket_event_id, r.attempts)
                    for r in rows]

    def take_passive(self, inbox_id: int, whole: list[int], first_part_of: int | None = None, owner: str = "") -> bool:
        """Take held rows for the platform's response, all or nothing: `whole` become `sending` (ref "passive",
        claimed by `owner`) until `confirm_passive` records the response written;
        `first_part_of` had only its first part answered — it is released with that part recorded, and the
        delivery loop sends the rest. Every other held reply to the message is released at once.
        False when the hold was over or the delivery loop had any of them (then nothing changed)."""
        now = utcnow()
        held = (OutboxItem.status == OutboxStatus.PENDING, OutboxItem.platform_ref == "", OutboxItem.not_before > now)
        try:
            with self.sessions.begin() as s:
                if whole and s.execute(update(OutboxItem).where(OutboxItem.id.in_(whole), *held)
                                       .values(status=OutboxStatus.SENDING, platform_ref=PASSIVE,
                                               attempts=OutboxItem.attempts + 1, claimed_by=owner)
                                       ).rowcount != len(whole):
                    raise _Lost
                if first_part_of is not None and s.execute(update(OutboxItem).where(
                        OutboxItem.id == first_part_of, *held).values(platform_ref=PASSIVE, not_before=now)
                                                           ).rowcount != 1:
                    raise _Lost
                s.execute(update(OutboxItem).where(OutboxItem.inbox_id == inbox_id, *held).values(not_before=now))
        except _Lost:  # the transaction rolled back: nothing was taken
            return False
        return True

    def confirm_passive(self, ids: list[int]) -> None:
        """The response carrying these taken rows has been written: they are `sent`."""
        if not ids:
            return
        with self.sessions.begin() as s:
            s.execute(update(OutboxItem).where(OutboxItem.id.in_(ids), OutboxItem.status == OutboxStatus.SENDING,
                                               OutboxItem.platform_ref == PASSIVE)
                      .values(status=OutboxStatus.SENT, sent_at=utcnow()))

    def retake_lost_passive(self, inbox_id: int, hold: timedelta) -> int:
        """The platform asked again for a message whose passive response died with its process (`uncertain`):
        those rows are held again for `hold` (for the new request's response, else the API). How many."""
        with self.sessions.begin() as s:
            return int(s.execute(update(OutboxItem).where(OutboxItem.inbox_id == inbox_id,
                                                          OutboxItem.status == OutboxStatus.UNCERTAIN,
                                                          OutboxItem.platform_ref == PASSIVE)
                                 .values(status=OutboxStatus.PENDING, platform_ref="", error="",
                                         not_before=utcnow() + hold)).rowcount)

    def release(self, inbox_id: int) -> None:
        """No passive answer after all: the message's held replies go to the delivery loop now."""
        with self.sessions.begin() as s:
            s.execute(update(OutboxItem).where(OutboxItem.inbox_id == inbox_id,
                                               OutboxItem.status == OutboxStatus.PENDING,
                                               OutboxItem.not_before > utcnow()).values(not_before=utcnow()))

    def claim(self, channels: set[str], limit: int = 50, owner: str = "") -> list[Claimed]:
        """Rows this process may send now: per address the oldest unfinished one, if it is due.

        Each returned row is already marked `sending` (committed, `claimed_by` = `owner`): whoever claimed it owns it.
        """
        if not channels:
            return []
        if self.sessions.kw["bind"].dialect.name == "postgresql":
            return self._claim_skip_locked(channels, limit, owner)
        now = utcnow()
        with self.sessions() as s:
            heads = s.execute(select(OutboxItem.channel, OutboxItem.address, func.min(OutboxItem.id))
                              .where(OutboxItem.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
                                     OutboxItem.channel.in_(channels))
                              .group_by(OutboxItem.channel, OutboxItem.address)
                              .order_by(func.min(OutboxItem.id)).limit(limit)).all()
        claimed: list[Claimed] = []
        for _channel, _address, head_id in heads:
            with self.sessions.begin() as s:
                got = s.execute(update(OutboxItem).where(OutboxItem.id == head_id,
                                                         OutboxItem.status == OutboxStatus.PENDING,
                                                         OutboxItem.not_before <= now)
                                .values(status=OutboxStatus.SENDING, attempts=OutboxItem.attempts + 1,
                                        claimed_by=owner))
                if got.rowcount != 1:
                    continue  # in backoff, or another process took it
                row = s.get(OutboxItem, head_id)
                claimed.append(Claimed(row.id, row.channel, row.address, row.kind, dict(row.payload),
                                       row.ticket_event_id, row.attempts, row.platform_ref))
        return claimed

    def _claim_skip_locked(self, channels: set[str], limit: int, owner: str) -> list[Claimed]:
        """`claim` in one statement: due heads of their address, skipping rows another process has locked."""
        earlier = aliased(OutboxItem)
        unfinished = [OutboxStatus.PENDING, OutboxStatus.SENDING]
        heads = (select(OutboxItem.id)
                 .where(OutboxItem.status == OutboxStatus.PENDING, OutboxItem.not_before <= utcnow(),
                        OutboxItem.channel.in_(channels),
                        ~select(earlier.id).where(earlier.channel == OutboxItem.channel,
                                                  earlier.address == OutboxItem.address,
                                                  earlier.id < OutboxItem.id,
                                                  earlier.status.in_(unfinished)).exists())
                 .order_by(OutboxItem.id).limit(limit).with_for_update(skip_locked=True))
        with self.sessions.begin() as s:
            rows = s.execute(update(OutboxItem).where(OutboxItem.id.in_(heads.scalar_subquery()))
                             .values(status=OutboxStatus.SENDING, attempts=OutboxItem.attempts + 1, claimed_by=owner)
                             .returning(OutboxItem.id, OutboxItem.channel, OutboxItem.address, OutboxItem.kind,
                                        OutboxItem.payload, OutboxItem.ticket_event_id, OutboxItem.attempts,
                                        OutboxItem.platform_ref)
                             .execution_options(synchronize_session=False)).all()
        return sorted((Claimed(r.id, r.channel, r.address, r.kind, dict(r.payload), r.ticket_event_id, r.attempts,
                               r.platform_ref) for r in rows), key=lambda c: c.id)

    def sent(self, item_id: int, platform_ref: str = "") -> None:
        self._finish(item_id, OutboxStatus.SENT, "", platform_ref)

    def failed(self, item_id: int, error: str) -> None:
        self._finish(item_id, OutboxStatus.FAILED, error, "")

    def retry_later(self, item_id: int, error: str, delay: timedelta) -> None:
        with self.sessions.begin() as s:
            row = s.get(OutboxItem, item_id)
            if row is not None and row.status == OutboxStatus.SENDING:
                row.status, row.error, row.not_before = OutboxStatus.PENDING, error[:2000], utcnow() + delay

    def progress(self, item_id: int, platform_ref: str) -> None:
        """Record the parts already sent of a multi-part message (a retry continues after them)."""
        with self.sessions.begin() as s:
            row = s.get(OutboxItem, item_id)
            if row is not None:
                row.platform_ref = platform_ref[:200]

    def recover(self, channels: set[str], owner: str = "") -> list[int]:
        """After a crash: rows left `sending` by a dead process become `uncertain` (never resent).

        With `owner` (a serving slot), only the rows that slot claimed: its siblings may be sending theirs."""
        mine = [OutboxItem.claimed_by == owner] if owner else []
        with self.sessions.begin() as s:
            rows = list(s.scalars(select(OutboxItem).where(OutboxItem.status == OutboxStatus.SENDING,
                                                           OutboxItem.channel.in_(channels), *mine)))
            for row in rows:
                row.status = OutboxStatus.UNCERTAIN
                row.error = "the process sending this stopped mid-send; the platform may or may not have it"
            return [r.id for r in rows]

    def _finish(self, item_id: int, status: OutboxStatus, error: str, platform_ref: str) -> None:
        with self.sessions.begin() as s:
            row = s.get(OutboxItem, item_id)
            if row is None:
                return
            row.status, row.error = status, error[:2000]
            if platform_ref:
                row.platform_ref = platform_ref[:200]
            if status == OutboxStatus.SENT:
                row.sent_at = utcnow()

    def get(self, item_id: int) -> OutboxItem | None:
        with self.sessions() as s:
            return s.get(OutboxItem, item_id)
