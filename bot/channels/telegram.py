"""Telegram channel: python-telegram-bot 22's `Bot` for the API, our own receiving so nothing is lost.

- **In**: long polling (our loop over raw `getUpdates`) or a webhook route in the `qiuxue serve`
  app. Each update is stored in the hub's inbox (keyed by update_id) before Telegram is told it
  arrived — the next `getUpdates` offset, or the webhook's 200 — so a crash never loses one and a
  re-delivered one is handled once. An update that cannot be parsed is skipped with one log line.
- Private chats are workers: text, button presses, and media/edits (the core answers those). The
  staff group (`helpdesk.chat_id`) goes to `telegram_staff.py`; admin commands (`/kb_status`,
  `/kb_refresh`, for `telegram.admins` only) to the knowledge-base admin service.
- **Out**: MarkdownV2, split under 4,096 characters (buttons on the last part; a retry continues
  after the parts already sent), 429 RetryAfter waited out, network errors retried; Telegram's
  refusals (blocked bot, bad request) are permanent failures the core records.
- With several serving processes only the primary one polls or calls setWebhook; every process
  answers webhook POSTs.
- Webhook mode refuses to start without `TELEGRAM_WEBHOOK_SECRET` (fail closed); a POST without the
  secret header is refused (403), an invalid body gets 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import warnings
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from telegram import Bot, Update
from telegram.constants import MessageLimit, ParseMode

from bot.channels.base import Capabilities, outgoing_from
from bot.channels.telegram_api import (
    keyboard,
    make_bot,
    split_message,
    token_from_env,
    webhook_secret_from_env,
    with_retry,
)
from bot.channels.telegram_staff import TelegramStaff
from bot.core.hub import Hub
from bot.core.messages import BUTTON, EDITED, TEXT, UNSUPPORTED, Incoming, Outgoing
from bot.core.outbox import Claimed, OutboxKind
from bot.i18n import t
from bot.kb_admin import KbAdmin
from common.settings import Settings

log = logging.getLogger(__name__)
CHANNEL = "telegram"
ADMIN_COMMANDS = ("kb_status", "kb_refresh")
MEDIA = (("sticker", "sticker"), ("photo", "photo"), ("voice", "voice"), ("audio", "voice"),
         ("video", "video"), ("video_note", "video"), ("animation", "video"), ("document", "file"))
UPDATE_TYPES = ["message", "edited_message", "callback_query"]
__all__ = ["TelegramChannel", "create", "split_message"]
# we call getUpdates raw on purpose: a malformed update must not fail the whole batch in parsing
warnings.filterwarnings("ignore", message=".*Bot.getUpdates.*", module="telegram")


class TelegramChannel:
    """Workers in private chats; hands the staff group's updates to `TelegramStaff`."""

    name = CHANNEL
    capabilities = Capabilities(buttons=True, copies_media=True, max_text=MessageLimit.MAX_TEXT_LENGTH)

    def __init__(self, cfg: Settings, hub: Hub, token: str, bot: Bot | None = None) -> None:
        self.cfg, self.hub = cfg, hub
        self.bot = bot or make_bot(cfg, token)
        self.mode = cfg.telegram.mode
        self.secret = webhook_secret_from_env() if self.mode == "webhook" else ""
        self.admins = set(cfg.telegram.admins)
        self.staff_chat = cfg.helpdesk.chat_id
        self.kb = KbAdmin(cfg)
        self._poller: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.bot.initialize()
        if not self.hub.primary:
            return  # a sibling serving process: the primary registers the webhook or polls (only one may poll)
        if self.mode == "webhook":
            await with_retry(lambda: self.bot.set_webhook(self.cfg.telegram.webhook_url, secret_token=self.secret,
                                                          allowed_updates=UPDATE_TYPES), "setWebhook")
        else:
            await with_retry(lambda: self.bot.delete_webhook(drop_pending_updates=False), "deleteWebhook")
            self._poller = asyncio.create_task(self._poll(), name="telegram-polling")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        with contextlib.suppress(Exception):
            await self.bot.shutdown()

    def routes(self) -> list[BaseRoute]:
        if self.mode != "webhook":
            return []
        return [Route(f"/{self.cfg.telegram.webhook_path.strip('/')}", self._webhook, methods=["POST"])]

    # -- receiving ------------------------------------------------------------------------------------
    async def _poll(self) -> None:
        """getUpdates with an offset that moves past an update only once it is stored."""
        offset: int | None = None
        timeout = self.cfg.telegram.poll_timeout_seconds
        while True:
            try:
                batch = await self.bot.do_api_request(
                    "getUpdates", api_kwargs={"offset": offset, "timeout": timeout, "allowed_updates": UPDATE_TYPES})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("getUpdates failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for raw in batch if isinstance(batch, list) else []:
                update_id = raw.get("update_id") if isinstance(raw, dict) else None
                if not isinstance(update_id, int) or isinstance(update_id, bool):
                    log.warning("skipping an update without a numeric update_id")
                    continue
                try:
                    await self.receive(raw)
                except asyncio.CancelledError:
                    raise
                except Exception:  # not stored (database down?): fetch it again later, from here
                    log.exception("could not store update %s; will fetch it again", update_id)
                    await asyncio.sleep(1.0)
                    break
                offset = update_id + 1

    async def _webhook(self, request: Request) -> Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning("refused a webhook POST without the right secret token")
            return JSONResponse({"error": "forbidden"}, status_code=403)
        try:
            raw = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError, RecursionError):
            return JSONResponse({"error": "invalid JSON"}, status_code=400)
        if not isinstance(raw, dict) or not isinstance(raw.get("update_id"), int):
            return JSONResponse({"error": "not an update"}, status_code=400)
        try:
            await self.receive(raw)
        except Exception:
            log.exception("could not store update %s", raw.get("update_id"))
            return JSONResponse({"error": "try again"}, status_code=503)  # Telegram retries
        return JSONResponse({"ok": True})

    async def receive(self, raw: dict[str, Any]) -> None:
        """Store one update where it belongs (worker, staff group, admin); unparseable ones are skipped.

        Keyed by update_id plus a digest of its content: Telegram re-delivers an update identically,
        while an update_id can be reused after a week without updates (then chosen at random)."""
        digest = hashlib.sha256(json.dumps(raw, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
        update_id = f"{raw['update_id']}:{digest}"
        seq = int(raw["update_id"])  # Telegram's order: one worker's updates are handled in it
        try:
            update = Update.de_json(raw, self.bot)
        except Exception as exc:
            log.warning("skipping update %s that Telegram's schema does not parse: %s", raw["update_id"],
                        type(exc).__name__)
            return
        chat = update.effective_chat
        user = update.effective_user
        if chat is None or user is None:
            return  # nothing this bot handles (e.g. an unknown update type)
        if self.staff_chat and chat.id == self.staff_chat:
            if update.message is not None or update.callback_query is not None:
                await self.hub.receive_platform("telegram_staff", update_id, "telegram_staff", raw, seq)
            return
        if chat.type != "private":
            return
        msg = update.effective_message
        command = (msg.text or "").split()[0].lstrip("/").split("@")[0] if msg is not None and msg.text else ""
        if update.message is not None and (msg.text or "").startswith("/") and command in ADMIN_COMMANDS:
            await self.hub.receive_platform(CHANNEL, update_id, f"{CHANNEL}-admin:{user.id}", raw, seq)
            return
        incoming = await self._incoming(update)
        if incoming is not None:
            await self.hub.receive(incoming, update_id, seq)

    async def _incoming(self, update: Update) -> Incoming | None:
        user = update.effective_user
        assert user is not None
        name = user.full_name
        if update.callback_query is not None:
            query = update.callback_query
            with contextlib.suppress(Exception):  # stop the spinner; a re-delivered press may be too old to answer
                await with_retry(query.answer, "answerCallbackQuery")
            message = query.message
            if message is not None and getattr(message, "reply_markup", None):  # no double presses
                with contextlib.suppress(Exception):
                    await with_retry(lambda: query.edit_message_reply_markup(reply_markup=None),
                                     "editMessageReplyMarkup")
            return Incoming(CHANNEL, str(user.id), kind=BUTTON, button=query.data or "", display_name=name)
        msg = update.effective_message
        if msg is None:
            return None
        if update.edited_message is not None:
            return Incoming(CHANNEL, str(user.id), msg.text or "", kind=EDITED, display_name=name)
        if msg.text is not None:
            return Incoming(CHANNEL, str(user.id), msg.text, kind=TEXT, display_name=name)
        media = next((label for attr, label in MEDIA if getattr(msg, attr, None)), "other")
        return Incoming(CHANNEL, str(user.id), msg.caption or "", kind=UNSUPPORTED, media=media, display_name=name)

    # -- platform updates (admin commands) ----------------------------------------------------------
    async def handle_platform(self, payload: dict[str, Any]) -> None:
        update = Update.de_json(payload, self.bot)
        msg, user = update.effective_message, update.effective_user
        if msg is None or user is None:
            return
        command = (msg.text or "").split()[0].lstrip("/").split("@")[0]
        if user.id not in self.admins:
            log.warning("refused /%s from non-admin Telegram user %s", command, user.id)
            text = t("admin_refused", "zh")
        elif command == "kb_refresh":
            text = await asyncio.to_thread(self.kb.refresh_text, f"telegram:{user.id}")
        else:
            text = await asyncio.to_thread(self.kb.status_text)
        await self.send_text(msg.chat_id, Outgoing(text))

    # -- sending --------------------------------------------------------------------------------------
    async def send(self, item: Claimed) -> str:
        if item.kind == OutboxKind.COPY:
            copied = await with_retry(lambda: self.bot.copy_message(
                int(item.address), int(item.payload["from_chat_id"]), int(item.payload["message_id"])), "copyMessage")
            return str(copied.message_id)
        done = [p for p in item.platform_ref.split(",") if p]
        return await self.send_text(int(item.address), outgoing_from(item.payload), done=done, item_id=item.id)

    async def send_text(self, chat_id: int, reply: Outgoing, thread_id: int | None = None,
                        done: list[str] | None = None, item_id: int | None = None) -> str:
        """Send a reply in parts; returns the message ids. With `item_id`, progress is recorded per part."""
        sent = list(done or [])
        parts = split_message(reply.text)
        for n, part in enumerate(parts):
            if n < len(sent):
                continue  # sent by an earlier attempt
            markup = keyboard(reply) if n == len(parts) - 1 else None
            message = await with_retry(lambda part=part, markup=markup: self.bot.send_message(
                chat_id, part, parse_mode=ParseMode.MARKDOWN_V2, reply_markup=markup,
                message_thread_id=thread_id), "sendMessage")
            sent.append(str(message.message_id))
            if item_id is not None and n < len(parts) - 1:
                await asyncio.to_thread(self.hub.outbox.progress, item_id, ",".join(sent))
        return ",".join(sent)


def create(cfg: Settings, hub: Hub, token: str | None = None) -> list[Any]:
    """The Telegram channel (and its staff side when `helpdesk.chat_id` is set), registered with the hub."""
    channel = TelegramChannel(cfg, hub, token or token_from_env())
    made: list[Any] = [channel]
    if cfg.helpdesk.chat_id:
        made.append(TelegramStaff(cfg, hub, channel))
    for c in made:
        hub.register(c)
    return made
