"""Admin-only console pages: the audit log (who did what, when, from where)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from bot.accounts import Account, Role

if TYPE_CHECKING:
    from bot.console.app import Console


def register(console: Console) -> None:
    async def audit(request: Request, account: Account) -> Response:
        return console.render(request, "audit.html", account, entries=console.accounts.recent_audit())

    console.page("/audit", audit, Role.ADMIN)
