"""The helpdesk inbox: the queue, a ticket's page, and the agent's actions on it.

Actions go through `bot.helpdesk.service` exactly as the Telegram staff group's do (same events, same
outbox relay to the worker's own channel, same lines in the staff topic), with the console account's
staff identity `console:NAME`; so a ticket claimed in one shows as claimed in the other. Each action is
audited with who did it. Open pages poll two HTML fragments (`…/rows`, `…/events`) for news.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from bot.accounts import Account
from bot.console import queries
from bot.helpdesk.service import AlreadyResolved, NotAnAgent
from bot.helpdesk.store import EventKind

if TYPE_CHECKING:
    from bot.console.app import Console

MAX_REPLY = 4000


def register(console: Console) -> None:
    helpdesk, sessions = console.helpdesk, console.sessions

    def tab_of(request: Request) -> str:
        tab = request.query_params.get("tab", "waiting")
        return tab if tab in queries.TABS else "waiting"

    async def inbox(request: Request, account: Account) -> Response:
        tab = tab_of(request)
        return console.render(request, "inbox.html", account, tab=tab, tabs=queries.TABS,
                              rows=queries.queue(sessions, tab, account.staff_id),
                              counts=queries.counts(sessions, account.staff_id))

    async def rows(request: Request, account: Account) -> Response:
        tab = tab_of(request)
        return console.render(request, "_rows.html", account, tab=tab,
                              rows=queries.queue(sessions, tab, account.staff_id),
                              counts=queries.counts(sessions, account.staff_id))

    def view_or_404(ticket_id: int) -> queries.TicketView | None:
        return queries.ticket_view(sessions, ticket_id)

    async def ticket(request: Request, account: Account) -> Response:
        view = view_or_404(int(request.path_params["ticket_id"]))
        if view is None:
            return PlainTextResponse("没有这个工单 · No such ticket", status_code=404)
        return console.render(request, "ticket.html", account, view=view, notice=request.query_params.get("n", ""),
                              error=request.query_params.get("e", ""))

    async def events(request: Request, account: Account) -> Response:
        view = view_or_404(int(request.path_params["ticket_id"]))
        if view is None:
            return PlainTextResponse("没有这个工单 · No such ticket", status_code=404)
        return console.render(request, "_events.html", account, view=view)

    def back(ticket_id: int, notice: str = "", error: str = "") -> Response:
        query = f"?e={error}" if error else (f"?n={notice}" if notice else "")
        return RedirectResponse(f"/console/tickets/{ticket_id}{query}", status_code=303)

    def action(name: str):  # type: ignore[no-untyped-def]
        """The POST handler for one ticket action; errors come back to the ticket page, nothing half-done."""
        async def handle(request: Request, account: Account) -> Response:
            ticket_id = int(request.path_params["ticket_id"])
            form = await request.form()
            text = str(form.get("text", "")).strip()
            if name in ("reply", "note") and not text:
                return back(ticket_id, error="empty")
            if len(text) > MAX_REPLY:
                return back(ticket_id, error="long")
            try:
                notice = await asyncio.to_thread(act, name, ticket_id, account, text, str(form.get("nonce", "")))
            except KeyError:
                return PlainTextResponse("没有这个工单 · No such ticket", status_code=404)
            except AlreadyResolved:
                return back(ticket_id, error="resolved")
            except NotAnAgent:
                return PlainTextResponse("不是客服 · Not a helpdesk agent", status_code=403)
            console.audit(request, account, name, f"ticket:{ticket_id}", text[:500])
            console.hub.kick()
            return back(ticket_id, notice=notice)

        handle.__name__ = f"ticket_{name}"
        return handle

    def act(name: str, ticket_id: int, account: Account, text: str, nonce: str) -> str:
        who, shown = account.staff_id, account.name
        if name == "claim":
            helpdesk.claim(ticket_id, who, shown)
        elif name == "resolve":
            helpdesk.resolve(ticket_id, who, shown)
        elif name == "draft":
            return "drafted" if helpdesk.draft_faq(ticket_id, who, shown) else "nodraft"
        else:
            kind = EventKind.NOTE if name == "note" else EventKind.AGENT_MESSAGE
            source = f"console:{account.name}:{nonce or 'x'}"  # the same form sent twice is recorded once
            if helpdesk.agent_message(ticket_id, who, shown, text, source=source, kind=kind) is None:
                return "duplicate"
        return name

    console.page("/", inbox)
    console.page("/inbox/rows", rows)
    console.page("/tickets/{ticket_id:int}", ticket)
    console.page("/tickets/{ticket_id:int}/events", events)
    for name in ("claim", "reply", "note", "resolve", "draft"):
        console.page(f"/tickets/{{ticket_id:int}}/{name}", action(name), methods=("POST",))
