"""Telegram channel: python-telegram-bot 22 around the dialogue core (long polling, or webhook).

- Private chats only. Text and button presses go to the core; stickers, photos, voice, files and
  edited messages get a clear reply from the core. The core runs in a worker thread; a per-user
  lock keeps each worker's messages in order while different workers are served concurrently.
- Replies are MarkdownV2-escaped, split under Telegram's 4,096-character limit (buttons on the
  last part), and retried on 429 RetryAfter (waiting as told) and on network errors (backoff).
- `/kb_status` and `/kb_refresh` only for the user ids in `telegram.admins`; others are refused
  and the attempt is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.helpers import escape_markdown

from bot.channels.telegram_helpdesk import TelegramHelpdesk
from bot.config import Config
from bot.core.dialogue import Dialogue
from bot.core.messages import BUTTON, EDITED, TEXT, UNSUPPORTED, Incoming, Outgoing
from bot.i18n import t

log = logging.getLogger(__name__)
CHANNEL = "telegram"
MAX_ATTEMPTS = 4
MEDIA = (("sticker", "sticker"), ("photo", "photo"), ("voice", "voice"), ("audio", "voice"),
         ("video", "video"), ("video_note", "video"), ("animation", "video"), ("document", "file"))


def split_message(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """MarkdownV2-escaped parts of `text`, each at most `limit` characters once escaped."""
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(escape_markdown(line, version=2)) > limit:  # one huge line: cut it
            cut = limit // 2
            parts.extend([escape_markdown(current, version=2)] if current else [])
            current = ""
            parts.append(escape_markdown(line[:cut], version=2))
            line = line[cut:]
        if len(escape_markdown(current + line, version=2)) > limit:
            parts.append(escape_markdown(current, version=2))
            current = ""
        current += line
    if current or not parts:
        parts.append(escape_markdown(current, version=2))
    return [p for p in parts if p.strip()] or [escape_markdown(text or " ", version=2)]


def keyboard(reply: Outgoing) -> InlineKeyboardMarkup | None:
    rows = [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in reply.buttons]
    if reply.link:
        rows.append([InlineKeyboardButton("🔗", url=reply.link)])
    return InlineKeyboardMarkup(rows) if rows else None


def _seconds(retry_after: Any) -> float:
    return float(retry_after.total_seconds()) if hasattr(retry_after, "total_seconds") else float(retry_after)


async def with_retry(call: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Run a Bot API call, waiting out 429s and retrying network errors with backoff."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return await call()
        except RetryAfter as exc:
            wait = _seconds(exc.retry_after)
            log.warning("%s: rate limited by Telegram, retrying in %.1fs", what, wait)
            await asyncio.sleep(wait)
        except (TimedOut, NetworkError) as exc:
            if isinstance(exc, BadRequest | Forbidden) or attempt == MAX_ATTEMPTS:
                raise
            log.warning("%s: %s, retry %d", what, type(exc).__name__, attempt)
            await asyncio.sleep(0.5 * 2 ** (attempt - 1))
    return await call()


class TelegramChannel:
    def __init__(self, cfg: Config, dialogue: Dialogue, token: str) -> None:
        self.cfg, self.dialogue, self.token = cfg, dialogue, token
        self.admins = {int(a) for a in cfg.telegram.admins or []}
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.staff = (TelegramHelpdesk(cfg, dialogue.helpdesk, self.deliver, self._worker_lang)
                      if int(cfg.helpdesk.chat_id or 0) else None)

    def build(self) -> Application:  # type: ignore[type-arg]
        base = str(self.cfg.telegram.base_url).rstrip("/")
        app = (Application.builder().token(self.token).base_url(base)
               .base_file_url(base.replace("/bot", "/file/bot") if base.endswith("/bot") else base + "/file")
               .concurrent_updates(True).connection_pool_size(64).pool_timeout(10.0).build())
        private = filters.ChatType.PRIVATE
        if self.staff is not None:
            self.staff.add_handlers(app)
        app.add_handler(CommandHandler(["kb_status", "kb_refresh"], self.on_admin, filters=private))
        app.add_handler(CallbackQueryHandler(self.on_button, pattern=r"^(?!hd:)"))
        app.add_handler(MessageHandler(private & filters.UpdateType.MESSAGES, self.on_message))
        app.add_error_handler(self.on_error)
        return app

    # -- incoming ---------------------------------------------------------------------------------
    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Text, media and edits from a worker's private chat, mapped to one Incoming."""
        msg, user = update.effective_message, update.effective_user
        if msg is None or user is None:
            return
        if update.edited_message is not None:
            kind, text, media = EDITED, msg.text or "", ""
        elif msg.text is not None:
            kind, text, media = TEXT, msg.text, ""
        else:
            kind, text = UNSUPPORTED, msg.caption or ""
            media = next((name for attr, name in MEDIA if getattr(msg, attr, None)), "other")
        await self._handle(Incoming(CHANNEL, str(user.id), text, kind=kind, media=media,
                                    display_name=user.full_name), msg.chat_id, context)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query, user = update.callback_query, update.effective_user
        if query is None or user is None:
            return
        await with_retry(query.answer, "answerCallbackQuery")
        message = query.message
        if message is not None and getattr(message, "reply_markup", None):  # no double presses
            with contextlib.suppress(BadRequest):  # already edited, or too old to edit
                await with_retry(lambda: query.edit_message_reply_markup(reply_markup=None), "editMessageReplyMarkup")
        chat_id = message.chat.id if message is not None else user.id
        await self._handle(Incoming(CHANNEL, str(user.id), kind=BUTTON, button=query.data or "",
                                    display_name=user.full_name), chat_id, context)

    async def _handle(self, msg: Incoming, chat_id: int, context: ContextTypes.DEFAULT_TYPE) -> None:
        async with self._locks[msg.user_id]:  # a worker's messages are handled in order
            turn = await asyncio.to_thread(self.dialogue.turn, msg)
            await self.deliver(context.bot, chat_id, turn.replies)
            if self.staff is not None:
                await self.staff.after_turn(context.bot, turn.opened, turn.ticket_id)

    async def started(self, app: Application) -> None:  # type: ignore[type-arg]
        """Once the bot runs: the helpdesk relay delivers what a restart left pending."""
        if self.staff is not None:
            await self.staff.started(app)

    async def stopped(self) -> None:
        if self.staff is not None:
            await self.staff.stopped()

    def _worker_lang(self, ticket: Any) -> str:
        from bot.core.store import Conversation

        with self.dialogue.store.sessions() as s:
            conv = s.get(Conversation, ticket.conversation_id)
            return conv.lang if conv else "zh"

    async def deliver(self, bot: Any, chat_id: int, replies: list[Outgoing], thread_id: int | None = None) -> None:
        for reply in replies:
            parts = split_message(reply.text)
            for n, part in enumerate(parts):
                markup = keyboard(reply) if n == len(parts) - 1 else None
                await with_retry(lambda part=part, markup=markup: bot.send_message(
                    chat_id, part, parse_mode=ParseMode.MARKDOWN_V2, reply_markup=markup,
                    message_thread_id=thread_id), "sendMessage")

    # -- admins -----------------------------------------------------------------------------------
    async def on_admin(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg, user = update.effective_message, update.effective_user
        if msg is None or user is None:
            return
        command = (msg.text or "").split()[0].lstrip("/").split("@")[0]
        if user.id not in self.admins:
            log.warning("refused /%s from non-admin Telegram user %s", command, user.id)
            await self.deliver(context.bot, msg.chat_id, [Outgoing(t("admin_refused", "zh"))])
            return
        text = await asyncio.to_thread(self._admin_command, command, user.id)
        await self.deliver(context.bot, msg.chat_id, [Outgoing(text)])

    def _admin_command(self, command: str, user_id: int) -> str:
        from bot.smoke import serving_check
        from ingest.refresh import RefreshError, refresh
        from ingest.versions import all_versions, live_version

        sessions = self.dialogue.store.sessions
        if command == "kb_refresh":
            try:
                r = refresh(self.cfg, by=f"telegram:{user_id}", candidate_check=serving_check)
            except RefreshError as exc:
                return f"refresh failed, the live version still serves: {exc}"
            errors = "\n".join(f"cannot read {e}" for e in r.errors)
            return (f"{r.version} {'now live' if r.switched else 'unchanged'}: {r.documents} documents, "
                    f"{r.chunks} chunks (+{r.added} ~{r.updated} -{r.removed} ={r.unchanged})\n{errors}").strip()
        live = live_version(sessions)
        lines = [f"live: {live.version if live else 'none'}"]
        for v in all_versions(sessions)[:5]:
            lines.append(f"{v.version} {v.status} {v.documents} docs {v.chunks} chunks "
                         f"{v.created_at:%Y-%m-%d %H:%M} by {v.created_by}")
        return "\n".join(lines)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("error while handling an update: %s", context.error, exc_info=context.error)


def token_from_env() -> str:
    token = os.environ.get("TELEGRAM_BOT_TOKEN", "").strip()
    if not token:
        raise SystemExit("TELEGRAM_BOT_TOKEN is not set (the token never goes in config.yaml)")
    return token


def add_commands(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the bot on a messaging channel")
    p.add_argument("--telegram", action="store_true", required=True, help="Telegram (token: TELEGRAM_BOT_TOKEN)")
    p.set_defaults(func=lambda cfg, args: serve(cfg))


def serve(cfg: Config) -> int:
    """Run the Telegram bot until interrupted: long polling, or a webhook if configured."""
    channel = TelegramChannel(cfg, Dialogue(cfg), token_from_env())
    app = channel.build()
    app.post_init = channel.started
    app.post_shutdown = lambda _app: channel.stopped()
    tg = cfg.telegram
    if str(tg.get("mode", "polling")) == "webhook":
        secret = os.environ.get("TELEGRAM_WEBHOOK_SECRET") or None
        app.run_webhook(listen=str(tg.webhook_listen), port=int(tg.webhook_port), url_path=str(tg.webhook_path),
                        webhook_url=str(tg.webhook_url), secret_token=secret, allowed_updates=Update.ALL_TYPES)
    else:
        app.run_polling(allowed_updates=Update.ALL_TYPES)
    return 0
