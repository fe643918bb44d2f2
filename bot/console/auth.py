"""Console sessions, CSRF and login throttling.

- The session lives in the database (`bot.staff_sessions`): the cookie holds only a random token, HTTP-only,
  SameSite=Lax, `Secure` over https (or always/never, `console.secure_cookie`), for `console.session_hours`.
  Every process sharing the database accepts it; logout deletes the row, so a copied cookie dies with it.
  The CSRF token is derived from the cookie's token; a login always starts a new token.
- Every console route is wrapped by `guarded(role)`: no valid login → 303 to the login page (GET) or 401
  (anything else); an agent on an admin route → 403; a POST without the session's CSRF token → 403.
  The account is re-read on every request, so a disabled account stops at once.
- `Throttle`: at most `console.login_attempts_per_minute` login attempts per client address.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from bot.accounts import Account, Accounts, Role
from bot.core.ratelimit import KeyedWindows
from bot.staff_sessions import SessionStore, csrf_of, new_token, plausible
from common.settings import Settings

COOKIE = "qiuxue_console"
LOGIN_PATH = "/console/login"
Handler = Callable[[Request, Account], Awaitable[Response]]


@dataclass
class Visit:
    """This request's session: the cookie's token, the account it is logged in as (if any), whether the
    token is new (the response must set the cookie)."""

    token: str
    name: str | None
    new: bool = False

    @property
    def csrf(self) -> str:
        return csrf_of(self.token)


class Throttle(KeyedWindows):
    """Sliding one-minute window of attempts per client address (bounded: see `KeyedWindows`)."""

    def __init__(self, per_minute: int) -> None:
        super().__init__(per_minute, 60.0)


class Auth:
    def __init__(self, cfg: Settings, accounts: Accounts) -> None:
        self.cfg, self.accounts = cfg, accounts
        self.max_age = int(cfg.console.session_hours * 3600)
        self.store = SessionStore(accounts.sessions, timedelta(seconds=self.max_age))
        self.throttle = Throttle(cfg.console.login_attempts_per_minute)

    # -- the session cookie -------------------------------------------------------------------------
    def session(self, request: Request) -> Visit:
        """The request's session (a new anonymous one if the cookie is missing or malformed)."""
        if "console_session" in request.scope:
            return request.scope["console_session"]
        token = request.cookies.get(COOKIE, "")
        visit = Visit(token, self.store.account_of(token)) if plausible(token) else Visit(new_token(), None, True)
        request.scope["console_session"] = visit
        return visit

    def save(self, request: Request, response: Response, visit: Visit) -> Response:
        mode = self.cfg.console.secure_cookie
        secure = mode == "always" or (mode == "auto" and request.url.scheme == "https")
        response.set_cookie(COOKIE, visit.token, max_age=self.max_age, httponly=True, samesite="lax",
                            secure=secure, path="/console")
        return response

    def log_in(self, request: Request, response: Response, account: Account) -> Response:
        """A new session (new token, new CSRF token): a token from before the login is never kept."""
        visit = Visit(self.store.create(account.name, address(request)), account.name, True)
        request.scope["console_session"] = visit
        return self.save(request, response, visit)

    def log_out(self, request: Request, response: Response) -> Response:
        """Delete the session's row (a copy of the cookie stops working too) and start an anonymous one."""
        self.store.revoke(self.session(request).token)
        visit = Visit(new_token(), None, True)
        request.scope["console_session"] = visit
        return self.save(request, response, visit)

    def account(self, request: Request) -> Account | None:
        name = self.session(request).name
        return self.accounts.current(name) if name else None

    def csrf_ok(self, request: Request, form: Any) -> bool:
        sent = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
        visit = self.session(request)
        return bool(sent) and not visit.new and hmac.compare_digest(sent, visit.csrf)

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
