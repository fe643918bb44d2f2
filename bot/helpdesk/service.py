"""Ticket lifecycle, channel-independent: open (or reopen), queue, claim, relay, note, resolve, draft.

waiting → claimed (by an agent) → resolved. "转人工" again within `helpdesk.reopen_hours` of a
resolution reopens the same ticket (same staff topic, full history); later, or after the worker
left with /bot, a new ticket is opened. Only the ids in `helpdesk.agents` may claim, reply, note
or resolve, plus the web console's active accounts, whose staff identity is `console:NAME`
(`bot.accounts`). Every change is a TicketEvent (the audit log).

The relay is the outbox: each event that someone must see (a worker's message for the staff side,
an agent's reply for the worker, queue news) adds outbox rows in the same transaction as the event,
addressed to the worker's own channel or to each staff side; the hub delivers them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.accounts import has_console_staff, is_console_agent
from bot.core.buttons import Staff, encode
from bot.core.edge import clean_text
from bot.core.messages import Button, Outgoing, to_payload
from bot.core.outbox import Outbox, OutboxKind
from bot.core.store import Conversation, TranscriptLine
from bot.helpdesk.store import CLAIMED, RESOLVED, WAITING, DraftFaq, EventKind, Ticket, TicketEvent
from bot.i18n import t
from common.clock import aware, utcnow
from common.settings import Config
from common.yamlio import read_yaml


class NotAnAgent(PermissionError):
    """Someone outside helpdesk.agents tried to act on a ticket."""


class AlreadyResolved(ValueError):
    """An action on a ticket that is already resolved."""


STAFF_LANG = "zh"  # the staff side reads Chinese first (its strings carry the English in brackets)
TELEGRAM_STAFF = "telegram_staff"  # the outbox channel of the Telegram staff group (helpdesk.chat_id)


@dataclass
class HandoffTopic:
    reason: str
    words: list[str]


def load_handoff_topics(dictionary_dir: Path) -> list[HandoffTopic]:
    path = dictionary_dir / "handoff.yaml"
    raw = read_yaml(path) if path.exists() else []
    return [HandoffTopic(str(r["reason"]), [str(w) for w in r["words"]]) for r in raw or []]


def staff_card(ticket: Ticket, lines: list[TranscriptLine]) -> Outgoing:
    """The ticket's summary card for the staff side, with Claim / Resolve."""
    facts = json.dumps(ticket.facts or {}, ensure_ascii=False)
    transcript = "\n".join(f"{'👷' if line.direction == 'in' else '🤖'} {line.text[:300]}" for line in lines)
    text = t("staff_card", STAFF_LANG, ticket=ticket.id, state=ticket.state, channel=ticket.channel,
             worker=ticket.display_name or ticket.user_id, region=ticket.region or "未知", reason=ticket.reason,
             facts=facts, transcript=transcript)
    return Outgoing(text[:4000], [[Button(t("staff_btn_claim", STAFF_LANG), encode(Staff("claim", ticket.id))),
                                   Button(t("staff_btn_resolve", STAFF_LANG), encode(Staff("resolve", ticket.id)))]])


def topic_name(ticket: Ticket) -> str:
    return t("staff_topic_name", STAFF_LANG, ticket=ticket.id, region=ticket.region or "?", reason=ticket.reason)[:120]


class Helpdesk:
    def __init__(self, cfg: Config, sessions: sessionmaker) -> None:
        h = cfg.helpdesk
        self.sessions = sessions
        self.outbox = Outbox(sessions)
        self.agents = {str(a) for a in h.agents}
        self.topics = load_handoff_topics(cfg.path(cfg.knowledge.dictionary_dir))
        hours = h.office_hours
        self.tz = ZoneInfo(hours.timezone)
        self.days = set(hours.days)
        self.start, self.end = hours.start, hours.end
        self.reopen = timedelta(hours=h.reopen_hours)
        self.reannounce = timedelta(minutes=h.reannounce_minutes)
        self.dislikes = h.handoff_after_dislikes
        self.staff_channels = [TELEGRAM_STAFF] if h.chat_id else []  # the web console reads tickets directly

    @property
    def staffed(self) -> bool:
        return bool(self.staff_channels)

    # -- when to hand over ------------------------------------------------------------------------
    def union_topic(self, text: str) -> str | None:
        """The reason, if the message is about something a union must handle in person."""
        return next((t.reason for t in self.topics if any(w in text for w in t.words)), None)

    def is_agent(self, user_id: str | int) -> bool:
        """A Telegram id in helpdesk.agents, or an active console account (`console:NAME`)."""
        return str(user_id) in self.agents or is_console_agent(self.sessions, str(user_id))

    def has_staff(self) -> bool:
        """Someone can pick tickets up: a staff group, or an account in the web console."""
        return self.staffed or has_console_staff(self.sessions)

    # -- office hours -----------------------------------------------------------------------------
    def in_office(self, now: datetime | None = None) -> bool:
        local = aware(now or utcnow()).astimezone(self.tz)
        return local.isoweekday() in self.days and self.start <= local.time() < self.end

    def next_opening(self, now: datetime | None = None) -> datetime:
        local = aware(now or utcnow()).astimezone(self.tz)
        for day in range(8):
            candidate = datetime.combine(local.date() + timedelta(days=day), self.start, self.tz)
            if candidate.isoweekday() in self.days and candidate > local:
                return candidate
        return local

    # -- the worker's side (inside the conversation's transaction) ---------------------------------
    @staticmethod
    def current(session: Session, conv: Conversation) -> Ticket | None:
        return session.scalars(select(Ticket).where(Ticket.conversation_id == conv.id, Ticket.state != RESOLVED)
                               .order_by(Ticket.id.desc())).first()

    def open(self, session: Session, conv: Conversation, reason: str, facts: dict[str, Any]) -> Ticket:
        """Open a ticket for this conversation, or reopen its recently resolved one; the staff side is told."""
        recent = session.scalars(select(Ticket).where(Ticket.conversation_id == conv.id)
                                 .order_by(Ticket.id.desc())).first()
        now = utcnow()
        if recent is not None and recent.state == RESOLVED and recent.resolved_at is not None \
                and now - aware(recent.resolved_at) < self.reopen:
            recent.state, recent.agent, recent.agent_name, recent.reason = WAITING, None, "", reason
            recent.resolved_at, recent.announced_at, recent.facts = None, now, facts
            event = self._event(session, recent, EventKind.REOPENED, "worker", reason)
            ticket = recent
        else:
            ticket = Ticket(conversation_id=conv.id, channel=conv.channel, user_id=conv.user_id,
                            display_name=clean_text(conv.display_name), region=conv.region, reason=reason, facts=facts)
            session.add(ticket)
            session.flush()
            event = self._event(session, ticket, EventKind.OPENED, "worker", reason)
        lines = list(session.scalars(select(TranscriptLine).where(TranscriptLine.conversation_id == conv.id)
                                     .order_by(TranscriptLine.id.desc()).limit(6)))[::-1]
        card = {**to_payload(staff_card(ticket, lines)), "topic_name": topic_name(ticket)}
        for staff in self.staff_channels:
            self.outbox.add(session, staff, str(ticket.id), card, OutboxKind.STAFF_CARD, event.id)
        return ticket

    @staticmethod
    def position(session: Session, ticket: Ticket) -> int:
        """1 for the next ticket an agent will pick up."""
        return int(session.scalar(select(func.count()).select_from(Ticket).where(
            Ticket.state == WAITING, Ticket.id <= ticket.id)) or 1)

    def worker_message(self, session: Session, ticket: Ticket, text: str) -> TicketEvent:
        name = ticket.display_name or t("staff_worker_default_name", STAFF_LANG)
        event = self._event(session, ticket, EventKind.WORKER_MESSAGE, ticket.display_name or "worker", clean_text(text),
                            delivered=not self.staff_channels)
        self._to_staff(session, ticket, t("staff_worker_says", STAFF_LANG, name=name, text=event.text), event.id)
        return event

    def worker_left(self, session: Session, ticket: Ticket) -> None:
        ticket.state, ticket.resolved_at = RESOLVED, utcnow()
        self._event(session, ticket, EventKind.WORKER_LEFT, "worker")

    # -- the agents' side (each call its own transaction) -------------------------------------------
    def claim(self, ticket_id: int, agent: str, agent_name: str) -> Ticket:
        with self.sessions.begin() as s:
            ticket = self._ticket_for(s, ticket_id, agent, "claim")
            if ticket.state == RESOLVED:
                raise AlreadyResolved(t("staff_already_resolved", STAFF_LANG, ticket=ticket_id))
            self._claim(s, ticket, agent, clean_text(agent_name))
            return ticket

    def resolve(self, ticket_id: int, agent: str, agent_name: str) -> Ticket:
        with self.sessions.begin() as s:
            ticket = self._ticket_for(s, ticket_id, agent, "resolve")
            if ticket.state == RESOLVED:
                raise AlreadyResolved(t("staff_already_resolved", STAFF_LANG, ticket=ticket_id))
            ticket.state, ticket.resolved_at = RESOLVED, utcnow()
            event = self._event(s, ticket, EventKind.RESOLVED, agent_name or str(agent))
            self._to_worker(s, ticket, "ticket_resolved", event.id)
            ask = Outgoing(t("staff_resolved_ask_kb", STAFF_LANG, ticket=ticket.id), [[
                Button(t("staff_btn_kb_add", STAFF_LANG), encode(Staff("kb", ticket.id, True))),
                Button(t("staff_btn_kb_no", STAFF_LANG), encode(Staff("kb", ticket.id, False)))]])
            self._to_staff(s, ticket, ask, event.id)
            return ticket

    def agent_message(self, ticket_id: int, agent: str, agent_name: str, text: str, source: str,
                      kind: EventKind = EventKind.AGENT_MESSAGE, media: dict[str, Any] | None = None,
                      ) -> TicketEvent | None:
        """Record an agent's reply (relayed to the worker) or note; None if this source was already recorded."""
        text, agent_name = clean_text(text), clean_text(agent_name)  # the agents' edge: masked once
        try:
            with self.sessions.begin() as s:
                ticket = self._ticket_for(s, ticket_id, agent, kind)
                if kind != EventKind.NOTE and ticket.state == WAITING:  # replying claims it
                    self._claim(s, ticket, agent, agent_name)
                event = self._event(s, ticket, kind, agent_name or str(agent), text, source=source,
                                    delivered=kind == EventKind.NOTE)
                if kind == EventKind.NOTE:
                    self._to_staff(s, ticket, t("staff_note_saved", STAFF_LANG), event.id)
                elif kind == EventKind.AGENT_PHOTO:
                    self.outbox.add(s, ticket.channel, ticket.user_id, {**(media or {}), "caption": event.text},
                                    OutboxKind.COPY, event.id)
                else:
                    lang = self._worker_lang(s, ticket)
                    self.outbox.add(s, ticket.channel, ticket.user_id,
                                    to_payload(Outgoing(t("agent_says", lang, name=event.actor, text=event.text))),
                                    OutboxKind.PUSH, event.id)
                return event
        except IntegrityError:
            return None  # the same channel message came twice (e.g. re-delivered after a restart)

    def draft_faq(self, ticket_id: int, agent: str, agent_name: str) -> DraftFaq | None:
        """A draft FAQ entry from the ticket: the worker's first question and the agent's last answer."""
        with self.sessions.begin() as s:
            ticket = self._ticket_for(s, ticket_id, agent, "draft_faq")
            events = list(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                                    .order_by(TicketEvent.id)))
            answers = [e.text for e in events if e.kind == EventKind.AGENT_MESSAGE]
            asked = [e.text for e in events if e.kind == EventKind.WORKER_MESSAGE]
            question = self._handoff_question(s, ticket) or (asked[0] if asked else "")
            if not answers or not question:
                return None
            draft = DraftFaq(ticket_id=ticket.id, question=question, answer=answers[-1], region=ticket.region,
                             created_by=agent_name or str(agent))
            s.add(draft)
            self._event(s, ticket, EventKind.DRAFT_FAQ, agent_name or str(agent), question)
            s.flush()
            return draft

    def tell_staff(self, ticket_id: int, text: str) -> None:
        """A line in the ticket's staff topic(s)."""
        with self.sessions.begin() as s:
            ticket = s.get(Ticket, ticket_id)
            if ticket is not None:
                self._to_staff(s, ticket, text, None)

    # -- delivery results (called by the hub) --------------------------------------------------------
    def delivered(self, event_id: int) -> None:
        with self.sessions.begin() as s:
            event = s.get(TicketEvent, event_id)
            if event is not None:
                event.delivered = True

    def undelivered(self, event_id: int, reason: str) -> None:
        """A relayed message the platform refused: recorded on the ticket, and the agents are told why."""
        with self.sessions.begin() as s:
            event = s.get(TicketEvent, event_id)
            ticket = s.get(Ticket, event.ticket_id) if event is not None else None
            if event is None or ticket is None:
                return
            note = self._event(s, ticket, EventKind.UNDELIVERED, "bot", reason, source=f"event:{event.id}")
            if event.kind in (EventKind.AGENT_MESSAGE, EventKind.AGENT_PHOTO):
                self._to_staff(s, ticket, t("staff_undelivered", STAFF_LANG, text=event.text[:200], reason=reason),
                               note.id)

    # -- lookups ------------------------------------------------------------------------------------
    def set_topic(self, ticket_id: int, topic_id: int) -> None:
        with self.sessions.begin() as s:
            ticket = s.get(Ticket, ticket_id)
            if ticket is not None:
                ticket.topic_id = topic_id

    def by_topic(self, topic_id: int) -> Ticket | None:
        with self.sessions() as s:
            return s.scalars(select(Ticket).where(Ticket.topic_id == topic_id).order_by(Ticket.id.desc())).first()

    def get(self, ticket_id: int) -> Ticket | None:
        with self.sessions() as s:
            return s.get(Ticket, ticket_id)

    def open_tickets(self) -> list[Ticket]:
        with self.sessions() as s:
            return list(s.scalars(select(Ticket).where(Ticket.state != RESOLVED).order_by(Ticket.id)))

    def ticket_list(self) -> str:
        """The open tickets, one line each, for the staff side."""
        rows = [t("staff_ticket_line", STAFF_LANG, ticket=x.id, state=x.state, region=x.region or "?",
                  reason=x.reason, agent=x.agent_name) for x in self.open_tickets()]
        return "\n".join(rows) or t("staff_no_tickets", STAFF_LANG)

    def reannounce_due(self, now: datetime | None = None) -> list[Ticket]:
        """Waiting tickets last announced longer ago than `reannounce_minutes`: announced again to the staff side."""
        now = now or utcnow()
        with self.sessions.begin() as s:
            # a row another process is re-announcing right now is skipped (PostgreSQL), never announced twice
            due = [x for x in s.scalars(select(Ticket).where(Ticket.state == WAITING).with_for_update(skip_locked=True))
                   if now - aware(x.announced_at) >= self.reannounce]
            for ticket in due:
                ticket.announced_at = now
                event = self._event(s, ticket, EventKind.ANNOUNCED, "bot")
                self._to_staff(s, ticket, t("staff_reannounce", STAFF_LANG, ticket=ticket.id,
                                            region=ticket.region or "?", reason=ticket.reason), event.id)
            return due

    def summary(self, ticket_id: int, last: int = 6) -> tuple[Ticket, list[TranscriptLine]]:
        with self.sessions() as s:
            ticket = s.get(Ticket, ticket_id)
            lines = list(s.scalars(select(TranscriptLine).where(TranscriptLine.conversation_id == ticket.conversation_id)
                                   .order_by(TranscriptLine.id.desc()).limit(last)))
            return ticket, lines[::-1]

    # -- internals ----------------------------------------------------------------------------------
    def _claim(self, s: Session, ticket: Ticket, agent: str, agent_name: str) -> None:
        first = ticket.state == WAITING
        ticket.state, ticket.agent, ticket.agent_name = CLAIMED, str(agent), agent_name
        event = self._event(s, ticket, EventKind.CLAIMED, agent_name or str(agent))
        if first:
            self._to_worker(s, ticket, "agent_joined", event.id, name=agent_name or str(agent))
            self._to_staff(s, ticket, t("staff_claimed", STAFF_LANG, name=agent_name or str(agent), ticket=ticket.id),
                           event.id)

    def _to_staff(self, s: Session, ticket: Ticket, message: str | Outgoing, event_id: int | None) -> None:
        reply = message if isinstance(message, Outgoing) else Outgoing(message)
        for staff in self.staff_channels:
            self.outbox.add(s, staff, str(ticket.id), to_payload(reply), OutboxKind.STAFF_TEXT, event_id)

    def _to_worker(self, s: Session, ticket: Ticket, key: str, event_id: int | None, **values: object) -> None:
        text = t(key, self._worker_lang(s, ticket), **values)
        self.outbox.add(s, ticket.channel, ticket.user_id, to_payload(Outgoing(text)), OutboxKind.PUSH, event_id)

    @staticmethod
    def _worker_lang(s: Session, ticket: Ticket) -> str:
        conv = s.get(Conversation, ticket.conversation_id)
        return conv.lang if conv is not None else "zh"

    def _ticket_for(self, s: Session, ticket_id: int, agent: str, action: str) -> Ticket:
        ticket = s.get(Ticket, ticket_id)
        if ticket is None:
            raise KeyError(t("staff_no_ticket", STAFF_LANG))
        if not self.is_agent(agent):
            raise NotAnAgent(f"{agent} is not a helpdesk agent (tried to {action} ticket #{ticket_id})")
        return ticket

    @staticmethod
    def _handoff_question(s: Session, ticket: Ticket) -> str:
        """The worker's last real question before the hand-off (not the '转人工' itself)."""
        lines = s.scalars(select(TranscriptLine).where(TranscriptLine.conversation_id == ticket.conversation_id,
                                                       TranscriptLine.direction == "in",
                                                       TranscriptLine.created_at <= ticket.created_at)
                          .order_by(TranscriptLine.id.desc()).limit(10))
        for line in lines:
            text = line.text.strip()
            typed = line.meta.get("kind") == "text" and not text.startswith("/")
            if typed and "人工" not in text and len(text) > 3:
                return text
        return ""

    @staticmethod
    def _event(s: Session, ticket: Ticket, kind: str, actor: str, text: str = "", source: str | None = None,
               delivered: bool = True) -> TicketEvent:
        event = TicketEvent(ticket_id=ticket.id, kind=kind, actor=actor, text=text, source=source,
                            delivered=delivered)
        s.add(event)
        s.flush()
        return event
