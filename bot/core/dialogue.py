"""The dialogue core: `Dialogue.turn(Incoming) -> Turn`, the same for every channel.

Routing, in order: unreadable input → a clear reply; a button (decoded and validated by
`buttons.py`) → its action; a /command or a known intent ("转人工", "我能不能申请") → that; while a
flow is asking, `understand.py` tells an answer, a correction, a step back, or a question — a question is
answered as outside the flow and the pending question asked again in the same reply (a digression);
after a check, a message correcting a recorded fact ("合同是两年") checks again; anything else → a
grounded answer with 👍/👎 — or, while the index cannot be reached (`IndexUnavailable`), "temporarily
unavailable, or ask a person" with the helpdesk button. Each message
is one database transaction on the worker's conversation row (see `store.py`), retried if another
process raced it. In that same transaction the message's inbox row is marked handled and, for
channels served by the hub, its replies are written to the outbox: a message is handled exactly
once and its replies are never lost. Channels without buttons get numbered options (`choices.py`).
"""

from __future__ import annotations

import logging
import random
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select

from bot.answering import ANSWER, NO_ANSWER, Answer, Answerer
from bot.core import choices
from bot.core import facts as recorded_facts
from bot.core.ask_place import PLACE_FLOW, AskPlace
from bot.core.buttons import (
    Back,
    Change,
    Consent,
    FieldAnswer,
    GuideStep,
    Lang,
    Menu,
    Pick,
    Place,
    Vote,
    decode,
    encode,
    fill_line,
    vote_template,
)
from bot.core.edge import clean_incoming
from bot.core.flows import APPLY, CHECK, EligibilityFlow, GuideFlow, menu
from bot.core.inbox import Inbox, InboxItem, InboxStatus
from bot.core.messages import (
    BUTTON,
    EDITED,
    UNSUPPORTED,
    Button,
    Capabilities,
    Incoming,
    Outgoing,
    to_payload,
)
from bot.core.outbox import Outbox
from bot.core.ratelimit import SlidingWindow
from bot.core.retention import forget
from bot.core.store import RETRYABLE, Conversation, ConversationStore, Feedback, TranscriptLine
from bot.core.understand import Reader, Reading
from bot.eligibility import Rules
from bot.guides import load_guides
from bot.helpdesk.service import Helpdesk
from bot.helpdesk.store import WAITING, Handoff, HandoffReason, Ticket
from bot.i18n import t
from bot.place_question import places_to_offer
from bot.regions import NATIONAL, Gazetteer
from bot.text import detect_language
from common.clock import aware
from common.db import open_database
from common.settings import Config
from common.yamlio import read_yaml
from ingest.index import IndexUnavailable

log = logging.getLogger(__name__)
MEDIA_NAMED = ("sticker", "photo", "voice", "file", "video", "location", "link")  # each has a media_… string
COMMAND = re.compile(r"^/([a-z_]+)(?:@\w+)?(?:\s+(.*))?$", re.IGNORECASE | re.DOTALL)


def feedback_row(lang: str) -> list[Button]:
    """👍/👎 under an answer; `{line}` becomes the answer's transcript id once it is logged."""
    return [Button(t("btn_like", lang), vote_template(True)), Button(t("btn_dislike", lang), vote_template(False))]


@dataclass
class Turn:
    """What one message did: the replies, and helpdesk work for the channel to carry out."""

    replies: list[Outgoing]
    handoff: Handoff | None = None  # set by routing: hand this conversation to a person, for this reason
    ticket_id: int | None = None  # the open ticket this message belongs to
    opened: bool = False  # the ticket was opened (or reopened) by this message
    relay: list[int] = field(default_factory=list)  # TicketEvent ids relayed to the agents (via the outbox)
    duplicate: bool = False  # the inbox row was handled before (by this or another process): nothing done
    deferred: bool = False  # an earlier message of the worker waits (seen under the lock): that one goes first


class Dialogue:
    def __init__(self, cfg: Config, answerer: Answerer | None = None,
                 capabilities: dict[str, Capabilities] | None = None) -> None:
        self.cfg = cfg
        self.capabilities = dict(capabilities or {})  # per channel name; unknown channels have buttons
        self.answerer = answerer or Answerer(cfg)
        self.store = ConversationStore(open_database(cfg))
        self.gazetteer: Gazetteer = self.answerer.gazetteer
        self.rules = Rules(cfg.path(cfg.knowledge.rules_dir), self.gazetteer)
        self.check = EligibilityFlow(self.rules)
        self.ask_place = AskPlace(self.gazetteer, list(self.rules.fields["region"].buttons))
        try:
            snap = self.answerer.knowledge.current()
        except IndexUnavailable as exc:  # started while the index server is down: answering waits for it
            log.warning("the index is unavailable at start-up: %s", exc)
            snap = None
        titles = {k: str(v.get("title", k)) for k, v in (snap.titles.items() if snap else [])}
        self.guide = GuideFlow(load_guides(cfg.path(cfg.knowledge.guides_dir)), titles)
        self.helpdesk = Helpdesk(cfg, self.store.sessions)
        intents_file = cfg.path(cfg.knowledge.dictionary_dir) / "intents.yaml"
        self.intents = {k: [str(w).lower() for w in v]
                        for k, v in read_yaml(intents_file).items()}
        self.reader = Reader(self.rules, self.intents)
        self.limiter = SlidingWindow(cfg.chat.rate_limit_messages, cfg.chat.rate_limit_seconds)
        self.outbox = Outbox(self.store.sessions)

    # -- entry point --------------------------------------------------------------------------
    def handle(self, msg: Incoming) -> list[Outgoing]:
        return self.turn(msg).replies

    def turn(self, msg: Incoming, inbox_id: int | None = None, via_outbox: bool = False) -> Turn:
        """Handle one message in one transaction; with `inbox_id`, mark that inbox row handled in it,
        and with `via_outbox`, write the replies to the outbox (the hub delivers them) in it too."""
        msg = clean_incoming(msg)  # storable text, ID/phone/bank numbers masked: nothing raw goes further
        if msg.text.strip().lower() in ("/reset", "/forget"):
            return self._forget(msg, inbox_id, via_outbox)
        caps = self.capabilities.get(msg.channel, Capabilities())
        for attempt in range(12):
            try:
                with self.store.locked(msg.channel, msg.user_id) as (session, conv):
                    item = session.get(InboxItem, inbox_id) if inbox_id is not None else None
                    if inbox_id is not None and (item is None or item.status != InboxStatus.PENDING):
                        return Turn([], duplicate=True)
                    if item is not None and (first := Inbox.oldest(session, item.key)) is not None \
                            and first.id != item.id:  # an earlier message of this worker arrived meanwhile
                        return Turn([], deferred=True)
                    turn = self._turn(session, conv, msg, caps)
                    self._settle(session, item, turn, msg, via_outbox, caps.reply_hold)
                    return turn
            except RETRYABLE:  # SQLite has no row lock: another process wrote the row first (every turn writes it)
                log.info("conversation %s/%s changed underneath us; retry %d", msg.channel, msg.user_id, attempt)
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # jitter, so two racers stop colliding
        raise RuntimeError("conversation kept changing; giving up on this message")

    def _turn(self, session, conv: Conversation, msg: Incoming, caps: Capabilities) -> Turn:  # type: ignore[no-untyped-def]
        if msg.display_name:
            conv.display_name = msg.display_name
        if not caps.buttons and msg.kind != BUTTON and not self._number_asked(conv):  # "2": the second option
            number, data = choices.picked(msg.text, conv.choices or [])
            if data is not None:
                msg = Incoming(msg.channel, msg.user_id, button=data, kind=BUTTON, display_name=msg.display_name)
            elif number is not None and conv.choices and not conv.flow_state.get("asking"):
                return self._logged(session, conv, msg, Turn([Outgoing(t("numbered_unknown", conv.lang, n=number))]),
                                    caps)
        ticket = self.helpdesk.current(session, conv)
        # while a person handles the conversation every message reaches them: no flood limit then
        limited = False
        if ticket is None:
            allowed, conv.recent = self.limiter.admit(conv.recent or [])
            limited = not allowed
        incoming = ConversationStore.log(session, conv, "in", msg.button or msg.text or f"[{msg.media}]",
                                         kind=msg.kind, rate_limited=limited)
        if limited:
            turn = Turn([Outgoing(t("rate_limited", conv.lang))])
        elif ticket is not None:
            turn = self._with_ticket(session, conv, ticket, msg)
        else:
            try:
                turn = self._route(conv, msg, session)
            except IndexUnavailable as exc:  # the helpdesk and everything else go on; the next question tries again
                log.warning("answering without the index: %s", exc)
                turn = Turn([Outgoing(t("index_unavailable", conv.lang),
                                      [[Button(t("btn_human", conv.lang), encode(Menu("human")))]])])
            if turn.handoff:
                turn = self._hand_over(session, conv, turn)
        return self._logged(session, conv, None, turn, caps, incoming.id)

    def _logged(self, session, conv: Conversation, msg: Incoming | None, turn: Turn,  # type: ignore[no-untyped-def]
                caps: Capabilities, reply_to: int | None = None) -> Turn:
        """Log the turn's replies (and `msg`, if not logged yet), fill in 👍/👎 data, number options if needed."""
        if msg is not None:
            reply_to = ConversationStore.log(session, conv, "in", msg.text, kind=msg.kind).id
        for reply in turn.replies:
            line = ConversationStore.log(session, conv, "out", reply.text, reply_to=reply_to, **reply.meta)
            reply.buttons = [[Button(b.label, fill_line(b.data, line.id)) for b in row] for row in reply.buttons]
        if not caps.buttons and turn.replies:
            if self._number_asked(conv):  # a typed number is the answer now, not an option: say how to go back
                turn.replies = [Outgoing(r.text, [], r.link, r.meta) for r in turn.replies]
                turn.replies[-1].text += "\n" + t("typed_nav_hint", conv.lang)
            turn.replies, conv.choices = choices.render(turn.replies, conv.lang)
        return turn

    def _number_asked(self, conv: Conversation) -> bool:
        """The flow asks for a number (an age, months): digits are the answer, not numbered options."""
        f = self.rules.fields.get(str(conv.flow_state.get("asking")))
        return conv.flow in (CHECK, APPLY) and f is not None and f.type == "int"

    def _forget(self, msg: Incoming, inbox_id: int | None, via_outbox: bool) -> Turn:
        lang = forget(self.store.sessions, msg.channel, msg.user_id) or "zh"  # tickets too
        turn = Turn([Outgoing(t("reset_done", lang))])
        with self.store.sessions.begin() as session:  # the inbox row went with the rest of the worker's data
            self._settle(session, None, turn, msg, via_outbox)
        return turn

    def _settle(self, session, item: InboxItem | None, turn: Turn, msg: Incoming,  # type: ignore[no-untyped-def]
                via_outbox: bool, hold: timedelta | None = None) -> None:
        """In the turn's transaction: the inbox row handled, and (for hub channels) the replies in the outbox,
        linked to the inbox row; with `hold`, kept back until that long after the message arrived so the
        channel may answer in the platform's own request (see `Outbox.take_passive`)."""
        if item is not None:
            Inbox.finish(item)
        if via_outbox:
            not_before = aware(item.created_at) + hold if item is not None and hold else None
            for reply in turn.replies:
                self.outbox.add(session, msg.channel, msg.user_id, to_payload(reply),
                                inbox_id=item.id if item is not None else None, not_before=not_before)

    # -- the helpdesk ---------------------------------------------------------------------------
    def _hand_over(self, session, conv: Conversation, turn: Turn) -> Turn:  # type: ignore[no-untyped-def]
        facts: dict[str, object] = {"region": conv.region, **conv.facts}
        if conv.facts:
            facts["eligibility"] = self.rules.check({"region": conv.region, **conv.facts}).as_json()["eligible"]
        assert turn.handoff is not None
        ticket = self.helpdesk.open(session, conv, turn.handoff.label, facts)
        replies = [*turn.replies, self._queue_reply(session, conv, ticket, "handoff_queued")]
        return Turn(replies, turn.handoff, ticket.id, opened=True)

    def _queue_reply(self, session, conv: Conversation, ticket: Ticket, key: str) -> Outgoing:  # type: ignore[no-untyped-def]
        text = t(key, conv.lang, ticket=ticket.id, position=self.helpdesk.position(session, ticket))
        if not self.helpdesk.in_office():
            when = self.helpdesk.next_opening().strftime("%m-%d %H:%M")
            text += "\n" + t("handoff_offhours", conv.lang, when=when)
        if not self.helpdesk.has_staff():
            text += "\n" + t("handoff_unstaffed", conv.lang)
        return Outgoing(text)

    def _with_ticket(self, session, conv: Conversation, ticket: Ticket, msg: Incoming) -> Turn:  # type: ignore[no-untyped-def]
        """While a person handles the conversation the bot stays quiet, except /bot and queue news."""
        if msg.text.strip().lower() == "/bot":
            self.helpdesk.worker_left(session, ticket)
            return Turn([Outgoing(t("back_to_bot", conv.lang), menu(conv.lang))], ticket_id=ticket.id)
        if msg.kind == BUTTON:
            return Turn([], ticket_id=ticket.id)
        text = msg.text if msg.kind != UNSUPPORTED else f"[{msg.media}] {msg.text}".strip()
        event = self.helpdesk.worker_message(session, ticket, text)
        replies = [self._queue_reply(session, conv, ticket, "still_waiting")] if ticket.state == WAITING else []
        return Turn(replies, ticket_id=ticket.id, relay=[event.id])

    # -- routing ------------------------------------------------------------------------------
    def _route(self, conv: Conversation, msg: Incoming, session) -> Turn:  # type: ignore[no-untyped-def]
        if msg.kind == UNSUPPORTED:
            media = t(f"media_{msg.media}" if msg.media in MEDIA_NAMED
                      else "media_other", conv.lang)
            return Turn([Outgoing(t("unsupported", conv.lang, media=media))])
        if msg.kind == EDITED:
            return Turn([Outgoing(t("edited_ignored", conv.lang))])
        if msg.kind == BUTTON and msg.button:
            return self._button(conv, msg.button, session)
        text = msg.text.strip()
        if text and re.search(r"[A-Za-z\u3400-\u9fff]", text) and not text.startswith("/") and conv.flow is None:
            conv.lang = detect_language(text)
        command = COMMAND.match(text)
        if command:
            return self._command(conv, command.group(1).lower(), session)
        lowered = text.lower()
        if any(w in text for w in self.intents["human"]) or lowered in self.intents["human_exact"]:
            return self._human(conv, Handoff(HandoffReason.WORKER_ASKED))
        if reason := self.helpdesk.union_topic(text):
            return Turn([], handoff=Handoff(HandoffReason.UNION_TOPIC, reason))
        if len(text) <= 30 and any(w in lowered for w in self.intents["check"]):
            return Turn(self.check.start(conv))
        if conv.flow in (CHECK, APPLY) and conv.flow_state.get("asking"):
            return self._in_flow(conv, text, session)
        if conv.flow == PLACE_FLOW and (waiting := self.ask_place.typed(conv, text)):
            return self._answer_there(conv, *waiting, session)
        if conv.flow is None and conv.facts and not self.reader.is_question(text):
            fixed = self.reader.corrections(text, known=conv.facts)  # "合同是两年" after the verdict
            if fixed:
                return Turn(self.check.correct(conv, fixed))
        return self._answer(conv, text, session)

    def _in_flow(self, conv: Conversation, text: str, session) -> Turn:  # type: ignore[no-untyped-def]
        """A typed message while a question is asked: see `understand.py` for where each line is drawn."""
        asking = str(conv.flow_state["asking"])
        only_place = conv.flow == APPLY or conv.flow_state.get("only") == "region"
        reading = self.reader.read(text, asking, self.check.profile(conv).get("region"), corrections=not only_place)
        if reading.kind == Reading.BACK:
            return Turn(self.check.back(conv))
        if reading.kind == Reading.ANSWER:
            return Turn(self._flow_answer(conv, reading.value))
        if reading.kind == Reading.CORRECT:
            return Turn(self.check.correct(conv, reading.corrections))
        if reading.kind == Reading.QUESTION:
            return self._digress(conv, text, session)
        return Turn(self._flow_answer(conv, text))  # unclear: what is wrong, the field's help, the question

    def _digress(self, conv: Conversation, text: str, session) -> Turn:  # type: ignore[no-untyped-def]
        """A question in the middle of a flow: answered exactly as outside it, then the pending question
        again, in one reply; the flow stays where it was (a place in the question is not its answer)."""
        conv.lang = detect_language(text)  # a whole question shows the worker's language
        turn = self._answer(conv, text, session, digression=True)
        if turn.handoff:  # a place we do not cover, a matter for a person: as outside the flow
            return turn
        return Turn([self._and_ask_again(conv, reply) for reply in turn.replies])

    def _and_ask_again(self, conv: Conversation, reply: Outgoing) -> Outgoing:
        again = self.check.ask_again(conv)
        text = f"{reply.text}\n\n{t('back_to_question', conv.lang)}\n{again.text}"
        return Outgoing(text, [*again.buttons, *reply.buttons], reply.link, {**reply.meta, "digression": True})

    def _flow_answer(self, conv: Conversation, value: str) -> list[Outgoing]:
        if conv.flow_state.get("only") == "region":  # /region: set the place, nothing more
            place = self.gazetteer.resolve(value.strip())
            if place is None:
                return [Outgoing(t("region_unknown", conv.lang, text=value.strip()[:20]),
                                 self._ask_region(conv).buttons)]
            conv.flow, conv.flow_state, conv.region = None, {}, place
            return [Outgoing(t("region_set", conv.lang, region=place), menu(conv.lang))]
        if conv.flow == APPLY:  # the guide needed the region first
            replies = self.check.answer(conv, value)
            if conv.region:
                return self.guide.start(conv, self._ask_region(conv))
            return replies
        return self.check.answer(conv, value)

    def _command(self, conv: Conversation, name: str, session) -> Turn:  # type: ignore[no-untyped-def]
        lang = conv.lang
        if name == "start":
            return Turn(self._start(conv, session))
        if name == "facts":
            return Turn([recorded_facts.show(conv, self.rules)])
        if name == "help":
            return Turn([Outgoing(t("help", lang), menu(lang))])
        if name == "check":
            return Turn(self.check.start(conv))
        if name == "apply":
            return Turn(self.guide.start(conv, self._ask_region(conv)))
        if name == "region":
            conv.flow, conv.flow_state = CHECK, {"asking": "region", "only": "region"}
            return Turn([self._ask_region(conv)])
        if name == "lang":
            return Turn([Outgoing(t("lang_ask", lang), [self._lang_buttons(lang)])])
        if name in ("cancel", "stop"):
            conv.flow, conv.flow_state = None, {}
            return Turn([Outgoing(t("cancelled", lang))])
        if name in ("human", "agent"):
            return self._human(conv, Handoff(HandoffReason.WORKER_ASKED))
        return Turn([Outgoing(t("help", lang), menu(lang))])

    def _start(self, conv: Conversation, session) -> list[Outgoing]:  # type: ignore[no-untyped-def]
        """/start: the welcome once (first contact); later the consent question alone while it is open,
        else a welcome back — and the question a flow is asking, which /start does not throw away."""
        if conv.consent is None:
            said_before = session.scalar(select(func.count()).select_from(TranscriptLine).where(
                TranscriptLine.conversation_id == conv.id, TranscriptLine.direction == "out"))
            return [self._consent_question(conv.lang, "consent_ask" if said_before else "welcome")]
        replies = [Outgoing(t("welcome_back", conv.lang), menu(conv.lang))]
        if conv.flow in (CHECK, APPLY) and conv.flow_state.get("asking"):
            replies.append(self.check.ask_again(conv))
        return replies

    def _consent_question(self, lang: str, key: str) -> Outgoing:
        return Outgoing(t(key, lang), [[Button(t("btn_consent_yes", lang), encode(Consent(True))),
                                        Button(t("btn_consent_no", lang), encode(Consent(False)))],
                                       self._lang_buttons(lang)])

    def _ask_region(self, conv: Conversation) -> Outgoing:
        return self.check.question(self.rules.fields["region"], conv.lang)

    @staticmethod
    def _human(conv: Conversation, reason: Handoff) -> Turn:
        return Turn([], handoff=reason)

    @staticmethod
    def _lang_buttons(lang: str) -> list[Button]:
        return [Button(t("btn_lang_zh", lang), encode(Lang("zh"))), Button(t("btn_lang_en", lang), encode(Lang("en")))]

    def _button(self, conv: Conversation, data: str, session) -> Turn:  # type: ignore[no-untyped-def]
        """A press, decoded in one place (`buttons.decode`); anything that does not decode or no longer
        applies gets "this button has expired", never an error."""
        lang = conv.lang
        stale = Turn([Outgoing(t("stale_button", lang))])
        match decode(data):
            case Menu(action):
                return self._command(conv, action, session)
            case Consent(given):
                conv.consent = given
                if not given:
                    conv.facts, conv.region = {}, None
                return Turn([Outgoing(t("consent_yes" if given else "consent_no", lang), menu(lang))])
            case Lang(code):
                conv.lang = code
                if conv.consent is None:  # chosen before answering the consent question: ask it again
                    return Turn([Outgoing(t("lang_set", code)), self._consent_question(code, "consent_ask")])
                return Turn([Outgoing(t("lang_set", code), menu(code))])
            case FieldAnswer(name, index):
                f = self.rules.fields.get(name)
                if f is None or conv.flow not in (CHECK, APPLY) or conv.flow_state.get("asking") != name:
                    return stale
                if f.type == "bool":
                    value = "1" if index == 1 else "0"
                elif index < len(f.buttons):
                    value = f.buttons[index]
                else:
                    return stale
                return Turn(self._flow_answer(conv, value))
            case Back(name):
                if conv.flow not in (CHECK, APPLY) or conv.flow_state.get("asking") != name:
                    return stale
                return Turn(self.check.back(conv))
            case Change(name):
                if name not in self.rules.fields:
                    return stale
                return Turn(self.check.change(conv, name))
            case GuideStep() as step:
                if conv.flow != APPLY:
                    return Turn(self.guide.start(conv, self._ask_region(conv)))
                return Turn(self.guide.press(conv, step))
            case Vote(line, up):
                return self._feedback(conv, line, up, session)
            case Place(name):  # the answer to "你在哪个省/市？"
                waiting = self.ask_place.pressed(conv, name)
                return stale if waiting is None else self._answer_there(conv, *waiting, session)
            case Pick(entry):  # the worker picked one of the suggested questions
                picked = self.answerer.answer_entry(entry, lang)
                if picked is None:
                    return stale
                reply = self._answer_reply(picked, [feedback_row(lang)])
                reply.meta["picked"] = entry  # logged: `qiuxue eval --from-feedback` turns picks into questions
                if conv.flow in (CHECK, APPLY) and conv.flow_state.get("asking"):  # picked in a digression
                    reply = self._and_ask_again(conv, reply)
                return Turn([reply])
        return stale

    def _feedback(self, conv: Conversation, line_id: int, up: bool, session) -> Turn:  # type: ignore[no-untyped-def]
        answer = session.get(TranscriptLine, line_id)
        if answer is None or answer.conversation_id != conv.id or answer.direction != "out":
            return Turn([Outgoing(t("stale_button", conv.lang))])
        question = session.get(TranscriptLine, int(answer.meta.get("reply_to") or 0))
        session.add(Feedback(conversation_id=conv.id, answer_line_id=answer.id, answer=answer.text,
                             question=question.text if question else "", region=conv.region, vote=1 if up else -1))
        conv.dislikes_in_a_row = 0 if up else conv.dislikes_in_a_row + 1
        if conv.dislikes_in_a_row >= self.helpdesk.dislikes:
            conv.dislikes_in_a_row = 0
            return Turn([Outgoing(t("feedback_sorry", conv.lang))], handoff=Handoff(HandoffReason.DISLIKES))
        return Turn([Outgoing(t("feedback_thanks" if up else "feedback_sorry", conv.lang),
                              [] if up else menu(conv.lang)[1:])])

    def _answer_there(self, conv: Conversation, question: str, place: str, session) -> Turn:  # type: ignore[no-untyped-def]
        """The question that waited for the place, answered there (remembered unless no consent);
        "其他" (NATIONAL) answers from the national text, for this question only."""
        if place != NATIONAL and conv.consent is not False:
            conv.region = place
        turn = self._answer(conv, question, session, place)
        if place == NATIONAL and turn.replies:
            turn.replies[0].text = f"{t('place_other', conv.lang)}\n{turn.replies[0].text}"
        return turn

    def _answer(self, conv: Conversation, text: str, session,  # type: ignore[no-untyped-def]
                region: str | None = None, digression: bool = False) -> Turn:
        """Answer `text` (at `region`, else the conversation's place). In a digression from a flow the
        question's place is not remembered and no place question interrupts the flow."""
        named = self.gazetteer.most_specific(self.gazetteer.find(text))
        if not digression and named and conv.consent is not False and named in self.rules.by_place:
            conv.region = named  # the conversation now is about this place
        retrieval = self.answerer.retrieve(text, region or conv.region)
        answer = self.answerer.respond(retrieval)
        if answer.action == NO_ANSWER and not answer.not_covered and not digression and \
                (places := places_to_offer(self.answerer, retrieval)):  # a place's rules would answer it
            return Turn([self.ask_place.ask(conv, text, places)])
        lang = answer.lang
        feedback = feedback_row(lang)
        human = [Button(t("btn_human", lang), encode(Menu("human")))]
        buttons = [feedback] if answer.action == ANSWER else [feedback, human]
        if answer.suggestions:
            buttons = [[Button(q[:40], encode(Pick(doc_id)))] for doc_id, q in answer.suggestions] + buttons[1:]
        if answer.action == ANSWER and answer.related:  # near misses one tap away
            buttons = [[Button(q[:40], encode(Pick(doc_id)))] for doc_id, q in answer.related] + buttons
            answer.answer = f"{answer.answer}\n{t('related_title', lang)}"
        reply = self._answer_reply(answer, buttons if not answer.not_covered else [feedback])
        handoff = Handoff(HandoffReason.NOT_COVERED, str(answer.region)) if answer.not_covered else None
        return Turn([reply], handoff=handoff)

    @staticmethod
    def _answer_reply(answer: Answer, buttons: list[list[Button]]) -> Outgoing:
        """An answer as a reply, with what the transcript (and `qiuxue report`) needs to know of it."""
        meta = {"action": answer.action, "sources": [s.id for s in answer.sources], "region": answer.region,
                "asked": answer.question, "offered": [d for d, _ in answer.suggestions + answer.related]}
        return Outgoing(answer.answer, buttons, meta=meta)
