"""The console's ASGI routes for `qiuxue serve`: everything under `/console/`, its static files under
`/static/console/`.

`routes(cfg, hub)` builds them. Every page is registered with `Console.page(path, handler, role)`, which
wraps it in the login / role / CSRF guard (`bot.console.auth`); only the login page itself is public.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from bot.accounts import Account, Accounts, Role
from bot.console.auth import Auth, address
from bot.core.hub import Hub
from common.settings import Settings

HERE = Path(__file__).resolve().parent
PREFIX = "/console"
Handler = Callable[[Request, Account], Awaitable[Response]]


class Console:
    """What every console page needs: settings, the hub (and its helpdesk), accounts, auth, templates."""

    def __init__(self, cfg: Settings, hub: Hub) -> None:
        self.cfg, self.hub = cfg, hub
        self.sessions = hub.sessions
        self.helpdesk = hub.helpdesk
        self.accounts = Accounts(cfg, hub.sessions)
        self.auth = Auth(cfg, self.accounts)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.pages: list[Route] = []

    def page(self, path: str, handler: Handler, role: Role = Role.AGENT, methods: tuple[str, ...] = ("GET",)) -> None:
        self.pages.append(Route(path, self.auth.guarded(role, handler), methods=list(methods)))

    def render(self, request: Request, template: str, account: Account | None, status: int = 200,
               **context: Any) -> Response:
        visit = self.auth.session(request)
        response = self.templates.TemplateResponse(request, template, {
            "account": account, "csrf": visit.csrf, "nonce": secrets.token_hex(8),
            "poll_ms": int(self.cfg.console.poll_seconds * 1000), **context}, status_code=status)
        if visit.new:  # a first-time visitor gets the token that carries the login form's CSRF token
            self.auth.save(request, response, visit)
        return response

    def audit(self, request: Request, account: Account, action: str, target: str = "", detail: str = "") -> None:
        self.accounts.audit(account.name, action, target, detail, address(request))


def routes(cfg: Settings, hub: Hub) -> list[BaseRoute]:
    from bot.console import admin_pages, inbox, insight, kb_pages, login

    console = Console(cfg, hub)
    public = login.register(console)
    inbox.register(console)
    admin_pages.register(console)
    kb_pages.register(console)
    insight.register(console)
    return [Mount(PREFIX, routes=[*public, *console.pages]),
            Mount("/static/console", app=StaticFiles(directory=str(HERE / "static")), name="console-static")]
