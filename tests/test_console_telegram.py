"""The console and the Telegram staff group side by side on one `qiuxue serve` app (uvicorn, the fake Bot API):
a ticket claimed in the console is claimed in the group's eyes (its topic says who, `/tickets` lists it as
claimed) and a console reply reaches the worker on Telegram; a ticket claimed in the group shows as claimed
in the console. Runs on a private copy of the session's indexed knowledge base and database.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.helpdesk.store import CLAIMED, Ticket
from common.settings import Config
from tests.conftest import unique_user
from tests.fakes.telegram_server import FakeBotApi
from tests.serving import free_port, running_hub
from tests.test_console import PASSWORD, add_user, csrf_of, private_copy
from tests.test_telegram import Worker, plain

GROUP = -1009876500012
AGENT = 779


async def console_login(client: httpx.AsyncClient, name: str) -> None:
    page = await client.get("/console/login")
    done = await client.post("/console/login", data={"name": name, "password": PASSWORD, "csrf": csrf_of(page.text),
                                                     "next": "/console/"})
    assert done.status_code == 303 and done.headers["location"] == "/console/", done.text[:300]


async def in_group(fake: FakeBotApi, needle: str, after: int) -> dict:
    return await fake.wait_for_async(lambda r: str(r["chat_id"]) == str(GROUP) and needle in plain(r["text"]),
                                     after=after)


async def handed_over(fake: FakeBotApi, user: int) -> tuple[int, dict]:
    """A Telegram worker asks what the knowledge base does not cover (handed over at once): ticket id, card."""
    mark = len(fake.sent())
    await Worker(fake, user).say("重庆读大专能补多少钱", "排第")
    card = await in_group(fake, "工单 #", mark)
    return int(re.search(r"#(\d+)", plain(card["text"])).group(1)), card


@pytest.mark.slow  # a second hub loads its own index snapshot and polls the fake Bot API: > 10 s on a loaded machine
def test_a_claim_in_either_place_shows_in_the_other(kb_cfg: Config, fake: FakeBotApi, tmp_path: Path) -> None:
    port = free_port()
    cfg = private_copy(kb_cfg, tmp_path, QIUXUE__SERVER__PORT=str(port),
                       QIUXUE__TELEGRAM__BASE_URL=f"{fake.base_url}/bot", QIUXUE__HELPDESK__CHAT_ID=str(GROUP),
                       QIUXUE__HELPDESK__AGENTS=f"[{AGENT}]")
    name = unique_user("side")
    assert add_user(cfg, name) == 0
    first_worker, second_worker = 96001, 96002

    async def scenario() -> None:
        async with running_hub(cfg, serve_http=True) as hub, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", follow_redirects=False) as console:
            await console_login(console, name)
            # claimed in the console → the group's topic says who, the worker hears it, /tickets lists it claimed
            ticket_id, card = await handed_over(fake, first_worker)
            topic = card["message_thread_id"]
            mark = len(fake.sent())
            token = csrf_of((await console.get(f"/console/tickets/{ticket_id}")).text)
            assert (await console.post(f"/console/tickets/{ticket_id}/claim", data={"csrf": token})).status_code == 303
            said = await in_group(fake, name, mark)
            assert said["message_thread_id"] == topic and "接手" in plain(said["text"])
            await fake.wait_for_async(lambda r: str(r["chat_id"]) == str(first_worker) and name in plain(r["text"]),
                                      after=mark)
            mark = len(fake.sent())
            fake.send_group_text(GROUP, AGENT, "/tickets", message_thread_id=topic)
            listing = await in_group(fake, f"#{ticket_id}", mark)
            assert re.search(rf"#{ticket_id} claimed[^\n]*{re.escape(name)}", plain(listing["text"])), listing["text"]
            # the console's reply reaches the worker on Telegram; the console shows it delivered
            mark = len(fake.sent())
            await console.post(f"/console/tickets/{ticket_id}/reply",
                               data={"csrf": token, "text": "您好，重庆的情况请问区总工会", "nonce": "t1"})
            await fake.wait_for_async(lambda r: str(r["chat_id"]) == str(first_worker)
                                      and "请问区总工会" in plain(r["text"]), after=mark)
            deadline = time.monotonic() + 10
            while "已送达 · delivered" not in (await console.get(f"/console/tickets/{ticket_id}/events")).text:
                assert time.monotonic() < deadline, "the console never showed the reply delivered"
                await asyncio.sleep(0.1)
            # claimed in the group → the console shows it claimed, by the Telegram agent, not in "mine"
            second_id, second_card = await handed_over(fake, second_worker)
            assert f"/console/tickets/{second_id}" in (await console.get("/console/?tab=waiting")).text
            fake.press_button(AGENT, second_card["message_id"], f"hd:claim:{second_id}")
            await fake.wait_for_async(lambda r: str(r["chat_id"]) == str(second_worker) and "接手" in plain(r["text"]))
            page = (await console.get(f"/console/tickets/{second_id}")).text
            assert "处理中 · claimed" in page
            with hub.sessions() as s:
                ticket = s.get(Ticket, second_id)
                assert ticket.state == CLAIMED and ticket.agent == str(AGENT)
            assert f"/console/tickets/{second_id}" in (await console.get("/console/?tab=claimed")).text
            assert f"/console/tickets/{second_id}" not in (await console.get("/console/?tab=mine")).text
            assert f"/console/tickets/{second_id}" not in (await console.get("/console/?tab=waiting")).text
            with hub.sessions() as s:
                mine = s.scalars(select(Ticket.id).where(Ticket.agent == f"console:{name}")).all()
            assert mine == [ticket_id]

    asyncio.run(scenario())

