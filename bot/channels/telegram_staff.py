"""The helpdesk's staff side on Telegram: a staff supergroup with one forum topic per ticket.

Out (outbox channel `telegram_staff`, address = ticket id): a ticket's summary card with Claim /
Resolve opens its topic; worker messages, claims, notes' receipts and re-announcements are lines in
it. A topic that was deleted makes those sends fail for good — recorded on the outbox row, never
blocking other tickets.

In (stored in the inbox by the Telegram channel, handled here in order): what an agent writes in a
topic (text or photo) becomes a ticket event relayed to the worker through the outbox; `/note` is an
internal note, `/tickets` lists open tickets. Only `helpdesk.agents` may act — everyone else, for
every command and button, is refused and logged. Every button press is answered exactly once.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from telegram import Update

from bot.channels.base import Capabilities, PermanentFailure, outgoing_from
from bot.channels.telegram_api import with_retry
from bot.core.buttons import Staff, decode
from bot.core.messages import Outgoing
from bot.core.outbox import Claimed
from bot.helpdesk.service import STAFF_LANG, AlreadyResolved, NotAnAgent, topic_name
from bot.helpdesk.store import EventKind
from bot.i18n import t
from common.settings import Settings

if TYPE_CHECKING:
    from bot.channels.telegram import TelegramChannel
    from bot.core.hub import Hub

log = logging.getLogger(__name__)


class TelegramStaff:
    name = "telegram_staff"
    capabilities = Capabilities(buttons=True)

    def __init__(self, cfg: Settings, hub: Hub, telegram: TelegramChannel) -> None:
        self.chat_id = cfg.helpdesk.chat_id
        self.hub, self.telegram = hub, telegram
        self.helpdesk = hub.helpdesk

    async def start(self) -> None:
        """The Telegram channel receives for both sides."""

    async def stop(self) -> None:
        """Nothing of its own to stop."""

    def routes(self) -> list[Any]:
        return []

    # -- out --------------------------------------------------------------------------------------------
    async def send(self, item: Claimed) -> str:
        ticket_id = int(item.address)
        topic = await self._topic(ticket_id, str(item.payload.get("topic_name", "")))
        return await self.telegram.send_text(self.chat_id, outgoing_from(item.payload), thread_id=topic)

    async def _topic(self, ticket_id: int, name: str) -> int:
        """The ticket's forum topic, created on first use."""
        ticket = self.helpdesk.get(ticket_id)
        if ticket is None:
            raise PermanentFailure(f"no ticket #{ticket_id}")
        if ticket.topic_id is None:
            created = await with_retry(lambda: self.telegram.bot.create_forum_topic(
                self.chat_id, name or topic_name(ticket)), "createForumTopic")
            self.helpdesk.set_topic(ticket_id, created.message_thread_id)
            return int(created.message_thread_id)
        return int(ticket.topic_id)

    async def _say(self, text: str, thread_id: int | None) -> None:
        await self.telegram.send_text(self.chat_id, Outgoing(text), thread_id=thread_id)

    # -- in ---------------------------------------------------------------------------------------------
    async def handle_platform(self, payload: dict[str, Any]) -> None:
        update = Update.de_json(payload, self.telegram.bot)
        if update.callback_query is not None:
            await self._button(update)
        elif update.message is not None:
            await self._message(update)

    async def _message(self, update: Update) -> None:
        msg, user = update.message, update.effective_user
        if msg is None or user is None or user.is_bot:
            return
        text = (msg.text or msg.caption or "").strip()
        thread = msg.message_thread_id
        is_command = text.startswith("/")
        if not self.helpdesk.is_agent(user.id):
            if is_command or thread is not None:
                log.warning("refused a staff-group message from non-agent Telegram user %s", user.id)
                await self._say(t("staff_reply_agents_only", STAFF_LANG), thread)
            return
        if text.startswith("/tickets"):
            await self._say(self.helpdesk.ticket_list(), thread)
            return
        ticket = self.helpdesk.by_topic(thread) if thread else None
        if ticket is None:
            return
        is_note = text.startswith("/note")
        if is_note:
            kind, body, media = EventKind.NOTE, text[len("/note"):].strip(), None
        elif msg.photo:
            kind, body, media = EventKind.AGENT_PHOTO, text, {"from_chat_id": msg.chat_id, "message_id": msg.message_id}
        else:
            kind, body, media = EventKind.AGENT_MESSAGE, text, None
        if not body and kind != EventKind.AGENT_PHOTO:
            return
        self.helpdesk.agent_message(ticket.id, str(user.id), user.full_name, body,
                                    source=f"{msg.chat_id}:{msg.message_id}", kind=kind, media=media)
        self.hub.kick()

    async def _button(self, update: Update) -> None:
        query, user = update.callback_query, update.effective_user
        assert query is not None and user is not None
        answer, alert, done = t("staff_unknown_button", STAFF_LANG), True, False
        try:
            answer, alert, done = self._act(decode(query.data), str(user.id), user.full_name)
        finally:  # exactly one answer per press, whatever happened
            await with_retry(lambda: query.answer(answer[:180] or None, show_alert=alert), "answerCallbackQuery")
        if done and query.message is not None:  # the card's buttons did their job
            with contextlib.suppress(Exception):
                await with_retry(lambda: query.edit_message_reply_markup(reply_markup=None), "editMessageReplyMarkup")
        self.hub.kick()

    def _act(self, data: object, agent: str, name: str) -> tuple[str, bool, bool]:
        """(the answer to show the presser, as an alert?, did it act?)"""
        if not isinstance(data, Staff):
            return t("staff_unknown_button", STAFF_LANG), True, False
        if not self.helpdesk.is_agent(agent):
            log.warning("refused: %s is not a helpdesk agent (pressed %s on ticket #%s)", agent, data.action,
                        data.ticket)
            return t("staff_agents_only", STAFF_LANG), True, False
        try:
            if data.action == "claim":
                self.helpdesk.claim(data.ticket, agent, name)
                return t("staff_claimed_ack", STAFF_LANG), False, True
            if data.action == "resolve":
                self.helpdesk.resolve(data.ticket, agent, name)
                return t("staff_resolved_ack", STAFF_LANG), False, True
            if data.yes:
                draft = self.helpdesk.draft_faq(data.ticket, agent, name)
                self.helpdesk.tell_staff(data.ticket, t("staff_draft_saved", STAFF_LANG, draft=draft.id) if draft
                                         else t("staff_draft_empty", STAFF_LANG))
            elif self.helpdesk.get(data.ticket) is None:
                return t("staff_no_ticket", STAFF_LANG), True, False
            return "", False, True
        except NotAnAgent as exc:
            log.warning("refused: %s", exc)
            return t("staff_agents_only", STAFF_LANG), True, False
        except (KeyError, AlreadyResolved) as exc:
            return str(exc.args[0] if exc.args else exc), True, False


__all__ = ["TelegramStaff"]
