"""Ticket lifecycle, channel-independent: open (or reopen), queue, claim, relay, note, resolve, draft.

waiting → claimed (by an agent) → resolved. "转人工" again within `helpdesk.reopen_hours` of a
resolution reopens the same ticket (same staff topic, full history); later, or after the worker
left with /bot, a new ticket is opened. Only the ids in `helpdesk.agents` may claim, reply, note
or resolve. Every change is a TicketEvent (the audit log).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.core.edge import clean_text
from bot.core.store import Conversation, TranscriptLine
from bot.helpdesk.store import CLAIMED, RESOLVED, WAITING, DraftFaq, Ticket, TicketEvent
from ingest.versions import utcnow


class NotAnAgent(PermissionError):
    """Someone outside helpdesk.agents tried to act on a ticket."""


@dataclass
class HandoffTopic:
    reason: str
    words: list[str]


def load_handoff_topics(dictionary_dir: Path) -> list[HandoffTopic]:
    path = dictionary_dir / "handoff.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else []
    return [HandoffTopic(str(r["reason"]), [str(w) for w in r["words"]]) for r in raw or []]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))


class Helpdesk:
    def __init__(self, cfg: Config, sessions: sessionmaker) -> None:
        h = cfg.helpdesk
        self.sessions = sessions
        self.agents = {str(a) for a in h.agents or []}
        self.topics = load_handoff_topics(cfg.path(cfg.knowledge.dictionary_dir))
        hours = h.office_hours
        self.tz = ZoneInfo(str(hours.timezone))
        self.days = {int(d) for d in hours.days}
        self.start, self.end = time.fromisoformat(str(hours.start)), time.fromisoformat(str(hours.end))
        self.reopen = timedelta(hours=float(h.reopen_hours))
        self.reannounce = timedelta(minutes=float(h.reannounce_minutes))
        self.dislikes = int(h.handoff_after_dislikes)

    # -- when to hand over ------------------------------------------------------------------------
    def union_topic(self, text: str) -> str | None:
        """The reason, if the message is about something a union must handle in person."""
        return next((t.reason for t in self.topics if any(w in text for w in t.words)), None)

    def is_agent(self, user_id: str | int) -> bool:
        return str(user_id) in self.agents

    # -- office hours -----------------------------------------------------------------------------
    def in_office(self, now: datetime | None = None) -> bool:
        local = _aware(now or utcnow()).astimezone(self.tz)
        return local.isoweekday() in self.days and self.start <= local.time() < self.end

    def next_opening(self, now: datetime | None = None) -> datetime:
        local = _aware(now or utcnow()).astimezone(self.tz)
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
        """Open a ticket for this conversation, or reopen its recently resolved one."""
        recent = session.scalars(select(Ticket).where(Ticket.conversation_id == conv.id)
                                 .order_by(Ticket.id.desc())).first()
        now = utcnow()
        if recent is not None and recent.state == RESOLVED and recent.resolved_at is not None \
                and now - _aware(recent.resolved_at) < self.reopen:
            recent.state, recent.agent, recent.agent_name, recent.reason = WAITING, None, "", reason
            recent.resolved_at, recent.announced_at, recent.facts = None, now, facts
            self._event(session, recent, "reopened", "worker", reason)
            return recent
        ticket = Ticket(conversation_id=conv.id, channel=conv.channel, user_id=conv.user_id,
                        display_name=conv.display_name, region=conv.region, reason=reason, facts=facts)
        session.add(ticket)
        session.flush()
        self._event(session, ticket, "opened", "worker", reason)
        return ticket

    @staticmethod
    def position(session: Session, ticket: Ticket) -> int:
        """1 for the next ticket an agent will pick up."""
        return int(session.scalar(select(func.count()).select_from(Ticket).where(
            Ticket.state == WAITING, Ticket.id <= ticket.id)) or 1)

    def worker_message(self, session: Session, ticket: Ticket, text: str) -> TicketEvent:
        return self._event(session, ticket, "worker_message", ticket.display_name or "worker", clean_text(text),
                           delivered=False)

    def worker_left(self, session: Session, ticket: Ticket) -> None:
        ticket.state, ticket.resolved_at = RESOLVED, utcnow()
        self._event(session, ticket, "worker_left", "worker")

    # -- the agents' side (each call its own transaction) -------------------------------------------
    def claim(self, ticket_id: int, agent: str, agent_name: str) -> Ticket:
        with self.sessions.begin() as s:
            ticket = self._ticket_for(s, ticket_id, agent, "claim")
            if ticket.state == RESOLVED:
                raise ValueError(f"ticket #{ticket_id} is already resolved")
            ticket.state, ticket.agent, ticket.agent_name = CLAIMED, str(agent), clean_text(agent_name)
            self._event(s, ticket, "claimed", ticket.agent_name or str(agent))
            return ticket

    def resolve(self, ticket_id: int, agent: str, agent_name: str) -> Ticket:
        with self.sessions.begin() as s:
            ticket = self._ticket_for(s, ticket_id, agent, "resolve")
            ticket.state, ticket.resolved_at = RESOLVED, utcnow()
            self._event(s, ticket, "resolved", agent_name or str(agent))
            return ticket

    def agent_message(self, ticket_id: int, agent: str, agent_name: str, text: str, source: str,
                      kind: str = "agent_message") -> TicketEvent | None:
        """Record an agent's reply (to relay) or note; None if this source was already recorded."""
        text, agent_name = clean_text(text), clean_text(agent_name)  # the agents' edge: masked once
        try:
            with self.sessions.begin() as s:
                ticket = self._ticket_for(s, ticket_id, agent, kind)
                if kind != "note" and ticket.state == WAITING:  # replying claims it
                    ticket.state, ticket.agent, ticket.agent_name = CLAIMED, str(agent), agent_name
                    self._event(s, ticket, "claimed", agent_name or str(agent))
                return self._event(s, ticket, kind, agent_name or str(agent), text, source=source,
                                   delivered=kind == "note")
        except IntegrityError:
            return None  # the same channel message came twice (e.g. re-delivered after a restart)

    def draft_faq(self, ticket_id: int, agent: str, agent_name: str) -> DraftFaq | None:
        """A draft FAQ entry from the ticket: the worker's first question and the agent's last answer."""
        with self.sessions.begin() as s:
            ticket = self._ticket_for(s, ticket_id, agent, "draft_faq")
            events = list(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                                    .order_by(TicketEvent.id)))
            answers = [e.text for e in events if e.kind == "agent_message"]
            asked = [e.text for e in events if e.kind == "worker_message"]
            question = self._handoff_question(s, ticket) or (asked[0] if asked else "")
            if not answers or not question:
                return None
            draft = DraftFaq(ticket_id=ticket.id, question=question, answer=answers[-1], region=ticket.region,
                             created_by=agent_name or str(agent))
            s.add(draft)
            self._event(s, ticket, "draft_faq", agent_name or str(agent), question)
            s.flush()
            return draft

    # -- relay bookkeeping --------------------------------------------------------------------------
    def undelivered(self) -> list[tuple[TicketEvent, Ticket]]:
        with self.sessions() as s:
            rows = s.execute(select(TicketEvent, Ticket).join(Ticket, Ticket.id == TicketEvent.ticket_id)
                             .where(TicketEvent.delivered.is_(False)).order_by(TicketEvent.id)).all()
            return [(e, t) for e, t in rows]

    def mark_delivered(self, event_id: int) -> None:
        with self.sessions.begin() as s:
            event = s.get(TicketEvent, event_id)
            if event is not None:
                event.delivered = True

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

    def due_for_reannounce(self, now: datetime | None = None) -> list[Ticket]:
        """Waiting tickets last announced longer ago than `reannounce_minutes`; marks them announced."""
        now = now or utcnow()
        with self.sessions.begin() as s:
            due = [t for t in s.scalars(select(Ticket).where(Ticket.state == WAITING))
                   if now - _aware(t.announced_at) >= self.reannounce]
            for ticket in due:
                ticket.announced_at = now
                self._event(s, ticket, "announced", "bot")
            return due

    def summary(self, ticket_id: int, last: int = 6) -> tuple[Ticket, list[TranscriptLine]]:
        with self.sessions() as s:
            ticket = s.get(Ticket, ticket_id)
            lines = list(s.scalars(select(TranscriptLine).where(TranscriptLine.conversation_id == ticket.conversation_id)
                                   .order_by(TranscriptLine.id.desc()).limit(last)))
            return ticket, lines[::-1]

    # -- internals ----------------------------------------------------------------------------------
    def _ticket_for(self, s: Session, ticket_id: int, agent: str, action: str) -> Ticket:
        ticket = s.get(Ticket, ticket_id)
        if ticket is None:
            raise KeyError(f"no ticket #{ticket_id}")
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
