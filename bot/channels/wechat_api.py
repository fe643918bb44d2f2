"""WeChat API plumbing on wechatpy's `WeChatClient`: the base URL from settings, the access_token shared
through the database (`wechat_token.py`), one refresh and one retry when WeChat calls the token invalid
or expired (40001, 42001), WeChat's errors turned into the core's delivery failures, and texts split
under WeChat's length limit at sentence boundaries.

Paths are the platform's own: `GET {api_base_url}/cgi-bin/token`, `POST
{api_base_url}/cgi-bin/message/custom/send?access_token=…` (客服消息), `POST …/cgi-bin/menu/create`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from sqlalchemy.orm import sessionmaker
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from bot.channels.base import PermanentFailure, TransientFailure
from bot.channels.wechat_token import SharedToken

log = logging.getLogger(__name__)
T = TypeVar("T")
TEXT_LIMIT = 2048  # bytes of UTF-8: WeChat's limit for a text message (passive reply and 客服消息)
TOKEN_ERRORS = frozenset({40001, 40014, 42001})  # invalid credential, invalid token, token expired
OUTSIDE_WINDOW = 45015
# refusals that no retry changes: outside the 48-hour window, too many replies, unsubscribed, bad openid,
# content too long, no permission for this API
PERMANENT = frozenset({OUTSIDE_WINDOW, 45047, 43004, 40003, 45002, 48001, 43019})
ENV = ("WECHAT_APP_ID", "WECHAT_APP_SECRET", "WECHAT_TOKEN")
AES_ENV = "WECHAT_AES_KEY"
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;\n])")


def credentials_from_env() -> dict[str, str]:
    """AppID, secret and token (all required) and the AES key (safe mode when set), from the environment only."""
    values = {name: os.environ.get(name, "").strip() for name in (*ENV, AES_ENV)}
    missing = [name for name in ENV if not values[name]]
    if missing:  # the wording `serve` looks for to skip a channel without credentials ("not set", "TOKEN")
        raise SystemExit(f"{', '.join(missing)} not set: WeChat needs WECHAT_APP_ID, WECHAT_APP_SECRET and "
                         "WECHAT_TOKEN in the environment (never in config.yaml)")
    return values


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Parts of `text`, each at most `limit` UTF-8 bytes, cut after a sentence or line where possible."""
    parts: list[str] = []
    current = ""
    for piece in _SENTENCE_END.split(text):
        while _utf8(piece) > limit:  # one sentence longer than a message: cut it by characters
            cut = len(piece)
            while _utf8(piece[:cut]) > limit:
                cut = cut * 3 // 4 or 1
            if current:
                parts.append(current)
                current = ""
            parts.append(piece[:cut])
            piece = piece[cut:]
        if _utf8(current + piece) > limit:
            parts.append(current)
            current = ""
        current += piece
    parts.append(current)
    kept = [p.strip() for p in parts if p.strip()]
    return kept or [text.strip() or "…"]


class _TimeoutSession(requests.Session):
    """requests with a default timeout (wechatpy's token fetch passes none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)


def failure(what: str, exc: Exception) -> PermanentFailure | TransientFailure:
    """The core's delivery failure for a WeChat error; the reason names WeChat's code and message."""
    if isinstance(exc, WeChatClientException) and exc.errcode is not None:
        reason = f"{what}: WeChat {exc.errcode} {exc.errmsg}"
        if exc.errcode == OUTSIDE_WINDOW:
            reason += " (outside the 48-hour customer-service window: the worker has not written for 48 hours)"
        return PermanentFailure(reason) if exc.errcode in PERMANENT else TransientFailure(reason)
    return TransientFailure(f"{what}: {type(exc).__name__}")


class WechatApi(WeChatClient):
    """wechatpy's client pointed at `base_url`, its token from the shared row; `call` wraps every request."""

    def __init__(self, base_url: str, app_id: str, secret: str, sessions: sessionmaker, timeout: float) -> None:
        super().__init__(app_id, secret, timeout=timeout, auto_retry=False)  # our retry: once, below
        self.base_url = base_url.rstrip("/")
        self.API_BASE_URL = f"{self.base_url}/cgi-bin/"
        self._http = _TimeoutSession(timeout)
        self.tokens = SharedToken(sessions, app_id, self._fetch_token)

    def _fetch_token(self) -> tuple[str, int]:
        result = self._fetch_access_token(url=f"{self.base_url}/cgi-bin/token", params={
            "grant_type": "client_credential", "appid": self.appid, "secret": self.secret})
        return str(result["access_token"]), int(result.get("expires_in", 7200))

    @property
    def access_token(self) -> str:  # type: ignore[override]
        return self.tokens.get()

    def call(self, what: str, request: Callable[[], T]) -> T:
        """One API request; a token WeChat refuses (40001/42001) is refreshed once and the request retried once.
        Raises `PermanentFailure` / `TransientFailure`."""
        try:
            used = self.access_token
            try:
                return request()
            except WeChatClientException as exc:
                if exc.errcode not in TOKEN_ERRORS:
                    raise
                log.warning("%s: WeChat refused the access_token (%s); refreshing it once", what, exc.errcode)
                self.tokens.refresh(used)
                return request()
        except (WeChatClientException, requests.RequestException) as exc:
            raise failure(what, exc) from exc

    def send_text(self, openid: str, text: str) -> None:
        """A customer-service text message (客服消息)."""
        self.call("message/custom/send", lambda: self.message.send_text(openid, text))
