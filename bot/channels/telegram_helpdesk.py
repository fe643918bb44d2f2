"""The agents' side on Telegram: a staff supergroup with one forum topic per ticket.

A new ticket opens a topic with a summary card (region, reason, collected facts, last messages)
and Claim / Resolve buttons. Whatever an agent writes in the topic (text or photo) reaches the
worker in the worker's own chat; the worker's messages appear in the topic. Relayed messages are
ticket events with a `delivered` flag, flushed in order, so a restart re-sends what was pending
and a re-delivered update is ignored: nothing dropped or doubled. `/note` adds an internal note,
`/tickets` lists open tickets; only `helpdesk.agents` may act, others are refused and logged.
Unclaimed tickets are announced again after `helpdesk.reannounce_minutes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.core.messages import Outgoing
from bot.helpdesk.service import Helpdesk, NotAnAgent
from bot.helpdesk.store import WAITING, Ticket
from bot.i18n import t
from common.settings import Config

log = logging.getLogger(__name__)
TELEGRAM = "telegram"


def card_buttons(ticket_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton("✋ 接手 Claim", callback_data=f"hd:claim:{ticket_id}"),
                                  InlineKeyboardButton("✅ 解决 Resolve", callback_data=f"hd:resolve:{ticket_id}")]])


class TelegramHelpdesk:
    def __init__(self, cfg: Config, helpdesk: Helpdesk, send: Any, worker_lang: Any) -> None:
        self.chat_id = cfg.helpdesk.chat_id
        self.helpdesk = helpdesk
        self.send = send  # TelegramChannel.deliver(bot, chat_id, replies, thread_id)
        self.worker_lang = worker_lang  # ticket -> "zh" | "en"
        self.check_seconds = cfg.helpdesk.reannounce_check_seconds
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def add_handlers(self, app: Application) -> None:  # type: ignore[type-arg]
        app.add_handler(CallbackQueryHandler(self.on_button, pattern=r"^hd:"), group=-1)
        app.add_handler(MessageHandler(filters.Chat(self.chat_id) & filters.UpdateType.MESSAGE, self.on_staff_message),
                        group=-1)

    async def started(self, app: Application) -> None:  # type: ignore[type-arg]
        """After (re)start: deliver whatever was pending, then watch for unclaimed tickets."""
        for ticket in self.helpdesk.open_tickets():
            if ticket.topic_id is None:
                await self.open_topic(app.bot, ticket.id)
        await self.flush(app.bot)
        self._task = asyncio.create_task(self._reannounce_loop(app.bot))

    async def stopped(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- from the worker's side ---------------------------------------------------------------------
    async def after_turn(self, bot: Any, opened: bool, ticket_id: int | None) -> None:
        if ticket_id is None:
            return
        if opened:
            await self.open_topic(bot, ticket_id)
        await self.flush(bot)

    async def open_topic(self, bot: Any, ticket_id: int) -> None:
        ticket, lines = self.helpdesk.summary(ticket_id)
        if ticket.topic_id is None:
            name = f"#{ticket.id} {ticket.region or '?'} · {ticket.reason}"[:120]
            topic = await bot.create_forum_topic(self.chat_id, name)
            self.helpdesk.set_topic(ticket.id, topic.message_thread_id)
            ticket.topic_id = topic.message_thread_id
        facts = json.dumps(ticket.facts or {}, ensure_ascii=False)
        transcript = "\n".join(f"{'👷' if line.direction == 'in' else '🤖'} {line.text[:300]}" for line in lines)
        card = (f"工单 #{ticket.id}（{ticket.state}）\n工人 worker: {ticket.display_name or ticket.user_id} "
                f"[{ticket.channel}]\n地区 region: {ticket.region or '未知'}\n原因 reason: {ticket.reason}\n"
                f"已收集 facts: {facts}\n最近消息 last messages:\n{transcript}")
        await bot.send_message(self.chat_id, card[:4000], message_thread_id=ticket.topic_id,
                               reply_markup=card_buttons(ticket.id))

    async def flush(self, bot: Any) -> None:
        """Deliver pending relayed messages, oldest first, each marked delivered once sent."""
        async with self._flush_lock:
            for event, ticket in self.helpdesk.undelivered():
                try:
                    await self._deliver(bot, event, ticket)
                except Forbidden:
                    log.warning("ticket #%s: the worker blocked the bot; message not delivered", ticket.id)
                self.helpdesk.mark_delivered(event.id)

    async def _deliver(self, bot: Any, event: Any, ticket: Ticket) -> None:
        if event.kind == "worker_message":
            if ticket.topic_id is None:
                await self.open_topic(bot, ticket.id)
                ticket = self.helpdesk.get(ticket.id) or ticket
            await self.send(bot, self.chat_id, [Outgoing(f"👷 {ticket.display_name or '工人'}: {event.text}")],
                            ticket.topic_id)
        elif ticket.channel != TELEGRAM:
            log.warning("ticket #%s: cannot reach a %s worker from Telegram", ticket.id, ticket.channel)
        elif event.kind == "agent_photo":
            await bot.copy_message(int(ticket.user_id), self.chat_id, int(event.source.split(":")[1]))
        else:
            text = t("agent_says", self.worker_lang(ticket), name=event.actor, text=event.text)
            await self.send(bot, int(ticket.user_id), [Outgoing(text)])

    async def _tell_worker(self, bot: Any, ticket: Ticket, key: str, **values: object) -> None:
        if ticket.channel == TELEGRAM:
            with contextlib.suppress(Forbidden):
                await self.send(bot, int(ticket.user_id), [Outgoing(t(key, self.worker_lang(ticket), **values))])

    # -- from the agents' side ----------------------------------------------------------------------
    async def on_staff_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg, user = update.effective_message, update.effective_user
        if msg is None or user is None or user.is_bot:
            return
        text = (msg.text or msg.caption or "").strip()
        if text.startswith("/tickets"):
            rows = [f"#{x.id} {x.state} {x.region or '?'} {x.reason} {x.agent_name}" for x in self.helpdesk.open_tickets()]
            await self.send(context.bot, self.chat_id, [Outgoing("\n".join(rows) or "没有未结工单 no open tickets")],
                            msg.message_thread_id)
            return
        ticket = self.helpdesk.by_topic(msg.message_thread_id) if msg.message_thread_id else None
        if ticket is None:
            return
        is_note = text.startswith("/note")
        kind = "note" if is_note else ("agent_photo" if msg.photo else "agent_message")
        body = text[len("/note"):].strip() if is_note else text
        try:
            event = self.helpdesk.agent_message(ticket.id, str(user.id), user.full_name, body,
                                                source=f"{msg.chat_id}:{msg.message_id}", kind=kind)
        except NotAnAgent as exc:
            log.warning("refused: %s", exc)
            await self.send(context.bot, self.chat_id, [Outgoing("⛔ 只有服务人员可以回复工单 (agents only)")],
                            msg.message_thread_id)
            return
        if event is None:
            return  # already relayed
        if is_note:
            await self.send(context.bot, self.chat_id, [Outgoing("📝 内部备注已记录 (note saved; the worker "
                                                                  "does not see it)")], msg.message_thread_id)
            return
        if ticket.state == WAITING:
            await self._tell_worker(context.bot, ticket, "agent_joined", name=user.full_name)
        await self.flush(context.bot)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query, user = update.callback_query, update.effective_user
        if query is None or user is None or not query.data:
            return
        _, action, ticket_id, *rest = query.data.split(":")
        name = user.full_name
        try:
            if action == "claim":
                ticket = self.helpdesk.claim(int(ticket_id), str(user.id), name)
                await query.answer("已接手 claimed")
                await self._tell_worker(context.bot, ticket, "agent_joined", name=name)
                await self.send(context.bot, self.chat_id, [Outgoing(f"✋ {name} 接手了工单 #{ticket.id}")],
                                ticket.topic_id)
            elif action == "resolve":
                ticket = self.helpdesk.resolve(int(ticket_id), str(user.id), name)
                await query.answer("已解决 resolved")
                await self._tell_worker(context.bot, ticket, "ticket_resolved")
                await context.bot.send_message(
                    self.chat_id, f"✅ 工单 #{ticket.id} 已解决。把这次的回答加入知识库吗？(add the answer to the KB?)",
                    message_thread_id=ticket.topic_id, reply_markup=InlineKeyboardMarkup([[
                        InlineKeyboardButton("📚 加入知识库 Add", callback_data=f"hd:kb:{ticket.id}:1"),
                        InlineKeyboardButton("不用 No", callback_data=f"hd:kb:{ticket.id}:0")]]))
            elif action == "kb":
                await query.answer()
                if rest and rest[0] == "1":
                    draft = self.helpdesk.draft_faq(int(ticket_id), str(user.id), name)
                    note = (f"📚 草稿 FAQ #{draft.id} 已保存，管理员用 `qiuxue kb approve {draft.id}` 批准后，下次刷新生效。"
                            if draft else "没有可用的问答（需要工人的问题和服务人员的回答）")
                    ticket = self.helpdesk.get(int(ticket_id))
                    await self.send(context.bot, self.chat_id, [Outgoing(note)], ticket.topic_id if ticket else None)
            with contextlib.suppress(BadRequest):
                await query.edit_message_reply_markup(reply_markup=None)
        except NotAnAgent as exc:
            log.warning("refused: %s", exc)
            await query.answer("⛔ 只有服务人员可以操作 (agents only)", show_alert=True)
        except (KeyError, ValueError) as exc:
            await query.answer(str(exc)[:180], show_alert=True)

    async def _reannounce_loop(self, bot: Any) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                for ticket in self.helpdesk.due_for_reannounce():
                    await self.send(bot, self.chat_id, [Outgoing(f"⏰ 工单 #{ticket.id}（{ticket.region or '?'}，"
                                                                 f"{ticket.reason}）还没有人接手，请认领。")],
                                    ticket.topic_id)
            except Exception:  # keep watching; the next round retries
                log.exception("re-announcing unclaimed tickets failed")
