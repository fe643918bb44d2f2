"""WeChat Official Account (服务号) channel: the message callback in `qiuxue serve`, passive replies within
the 5-second rule, customer-service messages (客服消息) through the outbox. wechatpy does the platform
work: signatures, AES (WeChatCrypto), XML parsing (parse_message), replies (create_reply), the API client.

- **Callback** at `wechat.path`: `GET` is WeChat's URL check (signature → echostr). `POST` carries a
  message in plaintext, or in safe mode (WECHAT_AES_KEY set) AES-encrypted with `msg_signature`. A
  missing or forged signature, a timestamp further off than `wechat.max_age_seconds`, an oversized
  body (> 64 KiB) or XML that does not parse or decrypt is refused (403 / 413 / 400) before anything
  is stored. Safe mode refuses plaintext posts.
- **Exactly once in**: a message is stored in the hub's inbox keyed by MsgId (events: FromUserName +
  CreateTime + Event) before WeChat gets any answer; WeChat's retries of it — to this process or
  another sharing the database — find the row and get `success` at once. Except after a crash: a
  passive reply taken by a process killed before its response was written is `uncertain`, and
  WeChat retrying proves the response never arrived, so the retry answers it (in its own response,
  or as 客服消息) — `Outbox.retake_lost_passive`.
- **The 5-second rule**: the capabilities' `reply_hold` makes the core keep the turn's replies in the
  outbox for `wechat.reply_budget_seconds` after the message arrived. If the turn is done within the
  budget, the callback takes them (`Outbox.take_passive`, one compare-and-set) and answers in its
  response; otherwise it answers `success` and the delivery loop sends them as 客服消息 once the hold
  is over. A row is either taken for the response or claimed by the delivery loop, never both; a
  taken row is marked `sent` once the response is written (a background task of the response).
- **Rendering**: text only (the core numbers options, `Capabilities(buttons=False)`), split under 2,048
  bytes at sentence ends; a passive reply carries as many whole replies as fit in one message (or the
  first part of a long one — the rest follows as 客服消息). `subscribe` is /start (welcome, consent);
  menu clicks are commands; voice uses WeChat's `Recognition` text; images, video, locations and links
  get the core's "text only" reply.
- **Out**: 客服消息 via `wechat_api.py` (shared access_token, one refresh + one retry on 40001/42001);
  45015 — outside the 48-hour window, also declared as `push_window` so the core refuses late pushes
  itself — is a permanent failure, recorded on the outbox row and told to the agent for a relayed reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import check_signature

from bot.channels.base import Capabilities, PermanentFailure, PushOnly, outgoing_from
from bot.channels.wechat_api import AES_ENV, TEXT_LIMIT, WechatApi, credentials_from_env, split_text
from bot.core.hub import Hub
from bot.core.messages import UNSUPPORTED, Incoming
from bot.core.outbox import Claimed, OutboxKind
from common.settings import Settings

log = logging.getLogger(__name__)
CHANNEL = "wechat"
MAX_BODY = 64 * 1024  # WeChat's messages are a few KiB; anything bigger is refused unread
SEND_MARGIN = 0.05  # seconds kept back from the budget to encrypt and write the response
MEDIA = {"image": "photo", "video": "video", "shortvideo": "video", "location": "location", "link": "link",
         "voice": "voice"}
MENU = {"check": "/check", "apply": "/apply", "human": "/human"}  # menu EventKey → command (`wechat menu`)
SUCCESS = "success"


class Refused(Exception):
    """A callback that is refused before anything is stored (status code, reason for the log)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Passive:
    """What a passive reply takes: whole rows, or the first part of one row, and the text that carries them."""

    whole: list[int]
    first_part_of: int | None
    text: str


def reply_text(payload: dict[str, Any]) -> str:
    """The text a worker sees for one outbox payload (its link appended when the text does not carry it)."""
    reply = outgoing_from(payload)
    return f"{reply.text}\n{reply.link}" if reply.link and reply.link not in reply.text else reply.text


def pick_passive(rows: list[Claimed], limit: int = TEXT_LIMIT) -> Passive | None:
    """As many of the turn's replies, in order, as fit in one message (or the first part of a long first one)."""
    texts: list[str] = []
    whole: list[int] = []
    for row in rows:
        parts = split_text(reply_text(row.payload), limit)
        if len(parts) > 1:
            return Passive([], row.id, parts[0]) if not whole else Passive(whole, None, "\n\n".join(texts))
        if len("\n\n".join([*texts, parts[0]]).encode("utf-8")) > limit:
            break
        texts.append(parts[0])
        whole.append(row.id)
    return Passive(whole, None, "\n\n".join(texts)) if whole else None


def to_incoming(msg: Any) -> tuple[Incoming, str] | None:
    """A parsed WeChat message or event as (Incoming, its platform id); None for what the bot ignores."""
    user = str(msg.source or "")
    if not user:
        raise ValueError("no FromUserName")
    if msg.type == "event":
        event = str(msg.event)
        if event in ("subscribe", "subscribe_scan"):
            text = "/start"
        elif event == "click" and str(msg.key or "") in MENU:
            text = MENU[str(msg.key)]
        else:
            return None  # unsubscribe, location reports, view, template results …: nothing to answer
        return Incoming(CHANNEL, user, text), f"{user}:{msg.time}:{event}"
    key = str(msg.id)
    if not msg.id:
        raise ValueError("no MsgId")
    if msg.type == "text":
        return Incoming(CHANNEL, user, str(msg.content or "")), key
    if msg.type == "voice" and msg.recognition:
        return Incoming(CHANNEL, user, str(msg.recognition)), key
    return Incoming(CHANNEL, user, kind=UNSUPPORTED, media=MEDIA.get(msg.type, "other")), key


class WechatChannel(PushOnly):
    """The callback route (in) and 客服消息 (out) of one Official Account."""

    name = CHANNEL

    def __init__(self, cfg: Settings, hub: Hub, secrets: dict[str, str]) -> None:
        self.cfg, self.hub, self.settings = cfg, hub, cfg.wechat
        self.token = secrets["WECHAT_TOKEN"]
        self.app_id = secrets["WECHAT_APP_ID"]
        aes = secrets.get(AES_ENV, "")
        self.crypto = WeChatCrypto(self.token, aes, self.app_id) if aes else None
        self.api = WechatApi(self.settings.api_base_url, self.app_id, secrets["WECHAT_APP_SECRET"],
                             hub.sessions, self.settings.timeout_seconds)
        self.budget = self.settings.reply_budget_seconds
        self.capabilities = Capabilities(buttons=False, push_window=timedelta(hours=48), max_text=TEXT_LIMIT // 3,
                                         reply_hold=timedelta(seconds=self.budget))

    def routes(self) -> list[BaseRoute]:
        return [Route("/" + self.settings.path.strip("/"), self._callback, methods=["GET", "POST"])]

    # -- in -------------------------------------------------------------------------------------------
    async def _callback(self, request: Request) -> Response:
        arrived = time.monotonic()
        try:
            query = self._verified(request)
            if request.method == "GET":
                echo = request.query_params.get("echostr")
                if not echo:
                    raise Refused(400, "URL check without echostr")
                return PlainTextResponse(echo)
            msg = self._parse(await self._body(request), query)
            got = to_incoming(msg)
        except Refused as exc:
            log.warning("refused a WeChat callback (%s): %s", exc.status, exc)
            return PlainTextResponse(str(exc), status_code=exc.status)
        except Exception as exc:  # XML that parses but is not a WeChat message
            log.warning("refused a WeChat callback (400): %s", type(exc).__name__)
            return PlainTextResponse("bad message", status_code=400)
        if got is None:
            return PlainTextResponse(SUCCESS)
        incoming, key = got
        try:
            fresh = await self.hub.receive(incoming, key)
        except Exception:
            log.exception("could not store WeChat message %s; WeChat will retry", key)
            return PlainTextResponse("try again", status_code=503)
        deadline = arrived + self.budget - SEND_MARGIN
        if not fresh and not await self._lost_passive(key, deadline):
            return PlainTextResponse(SUCCESS)  # a retry: the first delivery is answered (or being answered)
        taken = await self._passive(key, deadline)
        if taken is None:
            return PlainTextResponse(SUCCESS)
        xml = create_reply(taken.text, msg, render=True)
        if self.crypto is not None:
            xml = self.crypto.encrypt_message(xml, query["nonce"], query["timestamp"])
        return Response(xml, media_type="application/xml", background=BackgroundTask(self._confirm, taken.whole))

    def _verified(self, request: Request) -> dict[str, str]:
        query = {k: request.query_params.get(k, "") for k in ("signature", "timestamp", "nonce", "msg_signature",
                                                             "encrypt_type")}
        if not (query["signature"] and query["timestamp"] and query["nonce"]):
            raise Refused(403, "no signature")
        if not query["timestamp"].isdigit() or abs(time.time() - int(query["timestamp"])) > self.settings.max_age_seconds:
            raise Refused(403, "stale or invalid timestamp")
        try:
            check_signature(self.token, query["signature"], query["timestamp"], query["nonce"])
        except InvalidSignatureException:
            raise Refused(403, "forged signature") from None
        return query

    @staticmethod
    async def _body(request: Request) -> bytes:
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            raise Refused(413, "body too large")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise Refused(413, "body too large")
        return body

    def _parse(self, body: bytes, query: dict[str, str]) -> Any:
        try:
            if self.crypto is not None:
                if query["encrypt_type"] != "aes" or not query["msg_signature"]:
                    raise Refused(400, "safe mode expects an AES-encrypted message")
                xml = self.crypto.decrypt_message(body, query["msg_signature"], query["timestamp"], query["nonce"])
            elif query["encrypt_type"] == "aes":
                raise Refused(400, "an encrypted message, but WECHAT_AES_KEY is not set")
            else:
                xml = body.decode("utf-8")
            msg = parse_message(xml)
        except Refused:
            raise
        except InvalidSignatureException:
            raise Refused(403, "forged msg_signature") from None
        except Exception as exc:
            raise Refused(400, f"unreadable message ({type(exc).__name__})") from None
        if msg is None:
            raise Refused(400, "empty message")
        return msg

    async def _lost_passive(self, key: str, deadline: float) -> bool:
        """A retry of a message whose passive reply died with its process: that reply held again for this
        request (True), so that it is answered once after all."""
        item_id = await asyncio.to_thread(self.hub.inbox.find, CHANNEL, key)
        if item_id is None:
            return False
        hold = timedelta(seconds=max(0.0, deadline - time.monotonic()) + SEND_MARGIN)
        retaken = await asyncio.to_thread(self.hub.outbox.retake_lost_passive, item_id, hold)
        if retaken:
            log.info("WeChat retried message %s whose passive reply was lost with its process; answering again", key)
        return retaken > 0

    async def _confirm(self, ids: list[int]) -> None:
        """The response carrying these rows has been written."""
        await self.hub.record(self.hub.outbox.confirm_passive, ids)
        self.hub.kick()  # the worker's later replies may have waited behind these rows

    async def _passive(self, key: str, deadline: float) -> Passive | None:
        """The turn's replies taken for the response, if it is done before the deadline and they are still ours."""
        item_id = await self.hub.handled(CHANNEL, key, deadline)
        if item_id is None:
            return None
        rows = await asyncio.to_thread(self.hub.outbox.held, item_id)
        pick = pick_passive(rows)
        if pick is None or time.monotonic() > deadline:
            await asyncio.to_thread(self.hub.outbox.release, item_id)
            self.hub.kick()
            return None
        taken = await asyncio.to_thread(self.hub.outbox.take_passive, item_id, pick.whole, pick.first_part_of,
                                        self.hub.owner)
        self.hub.kick()  # what was not taken goes out through the API now
        return pick if taken else None

    # -- out ------------------------------------------------------------------------------------------
    async def send(self, item: Claimed) -> str:
        if item.kind == OutboxKind.COPY:
            raise PermanentFailure("WeChat cannot copy another platform's message")
        done = [p for p in item.platform_ref.split(",") if p]
        sent = list(done)
        parts = split_text(reply_text(item.payload))
        for n, part in enumerate(parts):
            if n < len(done):
                continue  # answered passively, or sent by an earlier attempt
            await asyncio.to_thread(self.api.send_text, item.address, part)
            sent.append("api")
            if n < len(parts) - 1:
                await asyncio.to_thread(self.hub.outbox.progress, item.id, ",".join(sent))
        return ",".join(sent)


def create(cfg: Settings, hub: Hub, secrets: dict[str, str] | None = None) -> list[Any]:
    """The WeChat channel, registered with the hub; [] when `wechat.enabled` is false.
    Raises SystemExit naming the variables when the credentials are not in the environment."""
    if not cfg.wechat.enabled:
        log.warning("channel wechat skipped: wechat.enabled is false")
        return []
    channel = WechatChannel(cfg, hub, secrets or credentials_from_env())
    hub.register(channel)
    return [channel]


__all__ = ["WechatChannel", "create", "pick_passive", "reply_text", "to_incoming"]
