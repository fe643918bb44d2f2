"""The mobile web chat at `/chat`: the same core as every channel, for workers who come from a link or QR code.

- In: `POST /chat/send` with JSON `{"id": client message id, "text": …}` or `{"id", "button": data}`; stored
  in the inbox (`hub.receive`, keyed by the client's id, so a resent request is handled once) before the
  page is told 202. The worker is a random id in an HTTP-only, SameSite=Lax cookie (`qiuxue_chat`); the
  core sees only its SHA-256, never the cookie itself. Bad input (not JSON, not an object, too large, no
  text) gets a 400 with a reason, Chinese and English.
- Out: `send` files the outbox row as delivered to the worker's mailbox; the page polls
  `GET /chat/messages?after=ID` for the rows sent to it (replies, agents' messages, queue news), with
  their buttons. A page fits a 360-px phone screen.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from bot.channels.base import Capabilities, PushOnly
from bot.core.hub import Hub
from bot.core.messages import BUTTON, Incoming
from bot.core.outbox import Claimed, OutboxItem, OutboxStatus
from bot.i18n import t
from common.settings import Settings

COOKIE = "qiuxue_chat"
MAX_BODY = 16_000  # bytes of one request; the core's own length check answers long questions
PAGE = Path(__file__).with_name("web_chat.html")


def worker_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


class WebChannel(PushOnly):
    name = "web"
    capabilities = Capabilities(buttons=True)

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.sessions = hub.sessions

    async def send(self, item: Claimed) -> str:
        """The row is the message: the worker's page fetches it from the outbox."""
        return f"web-{item.id}"

    def routes(self) -> list[Route]:
        return [Route("/chat", self.page, methods=["GET"]), Route("/chat/send", self.receive, methods=["POST"]),
                Route("/chat/messages", self.messages, methods=["GET"])]

    # -- the page ---------------------------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        html = PAGE.read_text(encoding="utf-8")
        for key in ("web_chat_title", "web_chat_placeholder", "web_chat_send", "web_chat_hello", "web_chat_offline"):
            html = html.replace("{{" + key + "}}", t(key, "zh") + " · " + t(key, "en"))
        response = HTMLResponse(html)
        if not request.cookies.get(COOKIE):
            self._set_cookie(request, response, secrets.token_urlsafe(24))
        return response

    @staticmethod
    def _set_cookie(request: Request, response: Response, token: str) -> None:
        response.set_cookie(COOKIE, token, max_age=180 * 86400, httponly=True, samesite="lax",
                            secure=request.url.scheme == "https", path="/chat")

    # -- in -----------------------------------------------------------------------------------------------
    async def receive(self, request: Request) -> Response:
        token = request.cookies.get(COOKIE, "")
        if len(token) < 16:
            return self._bad("web_chat_no_session", 401)
        body = await request.body()
        if len(body) > MAX_BODY:
            return self._bad("web_chat_too_large", 413)
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._bad("web_chat_bad_request", 400)
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"] \
                or not isinstance(data.get("text", ""), str) or not isinstance(data.get("button", ""), str) \
                or not (data.get("text") or data.get("button")):
            return self._bad("web_chat_bad_request", 400)
        user = worker_id(token)
        if data.get("button"):
            msg = Incoming(self.name, user, button=data["button"][:200], kind=BUTTON)
        else:
            msg = Incoming(self.name, user, data["text"])
        await self.hub.receive(msg, f"{user}:{data['id'][:64]}")
        return JSONResponse({"ok": True}, status_code=202)

    @staticmethod
    def _bad(key: str, status: int) -> Response:
        return JSONResponse({"error": t(key, "zh") + " · " + t(key, "en")}, status_code=status)

    # -- out ----------------------------------------------------------------------------------------------
    async def messages(self, request: Request) -> Response:
        token = request.cookies.get(COOKIE, "")
        if len(token) < 16:
            return JSONResponse({"messages": []})
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            after = 0
        rows = self._sent(worker_id(token), after)
        return JSONResponse({"messages": [{"id": r.id, "text": r.payload.get("text", ""),
                                           "buttons": r.payload.get("buttons") or []} for r in rows]})

    def _sent(self, user: str, after: int, limit: int = 50) -> list[Any]:
        with self.sessions() as s:
            rows = list(s.scalars(select(OutboxItem).where(
                OutboxItem.channel == self.name, OutboxItem.address == user, OutboxItem.id > after,
                OutboxItem.status == OutboxStatus.SENT).order_by(OutboxItem.id.desc()).limit(limit)))
        return rows[::-1]


def create(cfg: Settings, hub: Hub) -> list[WebChannel]:
    channel = WebChannel(hub)
    hub.register(channel)
    return [channel]
