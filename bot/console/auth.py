"""Console sessions, CSRF and login throttling.

- The session is a signed cookie (HMAC-SHA256 over JSON; key from `QIUXUE_CONSOLE_SECRET`, else a random
  one per process): HTTP-only, SameSite=Lax, `Secure` over https (or always/never, `console.secure_cookie`),
  expiring after `console.session_hours`. It holds the account name and the session's CSRF token.
- Every console route is wrapped by `guarded(role)`: no valid login → 303 to the login page (GET) or 401
  (anything else); an agent on an admin route → 403; a POST without the session's CSRF token → 403.
  The account is re-read on every request, so a disabled account stops at once.
- `Throttle`: at most `console.login_attempts_per_minute` login attempts per client address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from bot.accounts import Account, Accounts, Role
from bot.core.ratelimit import RateLimiter
from common.settings import Settings

log = logging.getLogger(__name__)
COOKIE = "qiuxue_console"
SECRET_ENV = "QIUXUE_CONSOLE_SECRET"
LOGIN_PATH = "/console/login"
Handler = Callable[[Request, Account], Awaitable[Response]]


class Signer:
    def __init__(self, key: bytes) -> None:
        self.key = key

    def sign(self, data: dict[str, Any]) -> str:
        body = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body)}"

    def unsign(self, value: str) -> dict[str, Any] | None:
        body, _, mac = value.partition(".")
        if not body or not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _mac(self, body: str) -> str:
        return hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()


def secret_key() -> bytes:
    value = os.environ.get(SECRET_ENV, "")
    if value:
        return value.encode()
    log.warning("%s is not set: console logins are signed with a random key and end when the server restarts",
                SECRET_ENV)
    return secrets.token_bytes(32)


class Throttle(RateLimiter):
    """Sliding one-minute window of attempts per client address (bounded: see `RateLimiter`)."""

    def __init__(self, per_minute: int) -> None:
        super().__init__(per_minute, 60.0)


class Auth:
    def __init__(self, cfg: Settings, accounts: Accounts, key: bytes | None = None) -> None:
        self.cfg, self.accounts = cfg, accounts
        self.signer = Signer(key or secret_key())
        self.max_age = int(cfg.console.session_hours * 3600)
        self.throttle = Throttle(cfg.console.login_attempts_per_minute)

    # -- the session cookie -------------------------------------------------------------------------
    def session(self, request: Request) -> dict[str, Any]:
        """The request's session (a new anonymous one with a fresh CSRF token if none or invalid)."""
        if "console_session" in request.scope:
            return request.scope["console_session"]
        data = self.signer.unsign(request.cookies.get(COOKIE, ""))
        if data is None or time.time() - float(data.get("t", 0)) > self.max_age:
            data = {"csrf": secrets.token_urlsafe(24), "t": time.time()}
        request.scope["console_session"] = data
        return data

    def save(self, request: Request, response: Response, data: dict[str, Any]) -> Response:
        mode = self.cfg.console.secure_cookie
        secure = mode == "always" or (mode == "auto" and request.url.scheme == "https")
        response.set_cookie(COOKIE, self.signer.sign(data), max_age=self.max_age, httponly=True, samesite="lax",
                            secure=secure, path="/console")
        return response

    def log_in(self, request: Request, response: Response, account: Account) -> Response:
        """A new session (new CSRF token) for the account: a session id from before the login is never kept."""
        return self.save(request, response, {"u": account.name, "csrf": secrets.token_urlsafe(24), "t": time.time()})

    def log_out(self, request: Request, response: Response) -> Response:
        return self.save(request, response, {"csrf": secrets.token_urlsafe(24), "t": time.time()})

    def account(self, request: Request) -> Account | None:
        name = self.session(request).get("u")
        return self.accounts.current(str(name)) if name else None

    def csrf_ok(self, request: Request, form: Any) -> bool:
        sent = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
        return bool(sent) and hmac.compare_digest(sent, str(self.session(request)["csrf"]))

    # -- the guard every console route goes through ---------------------------------------------------
    def guarded(self, role: Role, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            account = self.account(request)
            if account is None:
                if request.method in ("GET", "HEAD"):
                    return RedirectResponse(f"{LOGIN_PATH}?next={quote(request.url.path)}", status_code=303)
                return PlainTextResponse("请先登录 · Please log in", status_code=401)
            if role == Role.ADMIN and not account.is_admin:
                self.accounts.audit(account.name, "refused", request.url.path, "admin only", address(request))
                return PlainTextResponse("仅限管理员 · Admins only", status_code=403)
            if request.method == "POST" and not self.csrf_ok(request, await request.form()):
                self.accounts.audit(account.name, "csrf_refused", request.url.path, "", address(request))
                return PlainTextResponse("表单已失效，请刷新页面 · Form expired (CSRF), reload the page",
                                         status_code=403)
            return await handler(request, account)

        endpoint.role = role  # type: ignore[attr-defined]  # read by the test that walks every route
        endpoint.__name__ = handler.__name__
        return endpoint


def address(request: Request) -> str:
    return request.client.host if request.client else ""
