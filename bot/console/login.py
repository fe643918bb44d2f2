"""Log in and out of the console. The login form is the one public console page: its POST is checked
for the anonymous session's CSRF token, throttled per client address, and every attempt is audited;
repeated wrong passwords lock the account (`bot.accounts`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot.accounts import Account, Locked, LoginRefused
from bot.console.auth import address

if TYPE_CHECKING:
    from bot.console.app import Console

HOME = "/console/"


def safe_next(value: str) -> str:
    """Only a console path (never another site) to go to after logging in."""
    return value if value.startswith("/console/") and "//" not in value and "\\" not in value else HOME


def register(console: Console) -> list[Route]:
    auth = console.auth

    async def login_form(request: Request) -> Response:
        if auth.account(request) is not None:
            return RedirectResponse(HOME, status_code=303)
        return console.render(request, "login.html", None, next=safe_next(request.query_params.get("next", "")))

    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
        goto = safe_next(str(form.get("next", "")))

        def again(error: str, status: int) -> Response:
            return console.render(request, "login.html", None, status=status, error=error, name=name, next=goto)

        if not auth.csrf_ok(request, form):
            console.accounts.audit("-", "csrf_refused", "/console/login", name, address(request))
            return again("表单已失效，请重新登录 · The form expired, please try again", 403)
        if not auth.throttle.allow(address(request)):
            console.accounts.audit("-", "login_throttled", f"user:{name}", "", address(request))
            return again("尝试次数太多，请一分钟后再试 · Too many attempts, wait a minute", 429)
        try:
            # argon2 takes a while on purpose: off the event loop the channels share
            account = await asyncio.to_thread(console.accounts.login, name, password, address(request))
        except Locked:
            return again("账号已暂时锁定，请稍后再试或联系管理员 · Account locked for a while, "
                         "try later or ask an admin", 423)
        except LoginRefused:
            return again("用户名或密码错误 · Wrong name or password", 401)
        return auth.log_in(request, RedirectResponse(goto, status_code=303), account)

    async def logout(request: Request, account: Account) -> Response:
        console.audit(request, account, "logout")
        return auth.log_out(request, RedirectResponse("/console/login", status_code=303))

    console.page("/logout", logout, methods=("POST",))
    return [Route("/login", login_form, methods=["GET"]), Route("/login", login, methods=["POST"])]
