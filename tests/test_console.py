"""The web console without a browser: accounts (`qiuxue users add`), login, lock-out, throttling, CSRF,
every route's guard, and the inbox's actions reaching a worker through the outbox (and the staff group).

One app (the real `build_app`, hub running, an in-process worker channel) is shared by the module.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from bot.accounts import AuditEntry, Role, StaffUser, cmd_users
from bot.channels import web
from bot.channels.inprocess import InProcessChannel, InProcessChat
from bot.cli import main
from bot.console.auth import COOKIE
from bot.core.dialogue import Dialogue
from bot.core.hub import Hub
from bot.core.outbox import OutboxItem, OutboxKind
from bot.helpdesk.service import TELEGRAM_STAFF
from bot.helpdesk.store import EventKind, Ticket, TicketEvent
from bot.server import build_app
from bot.staff_sessions import ConsoleSession, token_hash
from common.settings import Config
from tests.conftest import FAST, make_config, unique_user

PASSWORD = "correct horse battery"


@dataclass
class Env:
    cfg: Config
    hub: Hub
    phone: InProcessChannel
    client: TestClient
    agent: str
    admin: str


def add_user(cfg: Config, name: str, role: str = "agent", password: str = PASSWORD) -> int:
    """`qiuxue users add NAME --role ROLE --password-stdin`'s function, the password on stdin."""
    patch = pytest.MonkeyPatch()
    patch.setattr("sys.stdin", io.StringIO(password + "\n"))
    try:
        return cmd_users(cfg, argparse.Namespace(name=name, role=role, password_stdin=True))
    finally:
        patch.undo()


def private_copy(kb_cfg: Config, root: Path, **extra: str) -> Config:
    """The session's indexed KB copied (index and database), so refreshes and rollbacks stay private."""
    shutil.copytree(kb_cfg.data_path, root / "data")
    return make_config(root, QIUXUE__DATA_DIR=str(root / "data"), **FAST,
                       QIUXUE__KNOWLEDGE__UPLOADS_DIR=str(root / "uploads"),
                       QIUXUE__KNOWLEDGE__APPROVED_DIR=str(root / "approved"), **extra)


def staffed_hub(cfg: Config, prefix: str) -> tuple[Hub, InProcessChannel, str, str]:
    """A hub with an in-process worker channel and the web chat, and a new agent and admin account."""
    agent, admin = unique_user(f"{prefix}agent"), unique_user(f"{prefix}admin")
    assert add_user(cfg, agent, "agent") == 0 and add_user(cfg, admin, "admin") == 0
    hub = Hub(Dialogue(cfg))
    phone = InProcessChannel()
    hub.register(phone)
    web.create(cfg, hub)
    return hub, phone, agent, admin


@pytest.fixture(scope="module")
def env(kb_cfg: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    # a private database: staff-group rows written here must never reach another module's fake group
    cfg = private_copy(kb_cfg, tmp_path_factory.mktemp("console"), QIUXUE__HELPDESK__CHAT_ID="-100777",
                       QIUXUE__CONSOLE__LOGIN_ATTEMPTS_PER_MINUTE="1000")
    hub, phone, agent, admin = staffed_hub(cfg, "")
    with TestClient(build_app(cfg, hub), base_url="http://127.0.0.1", follow_redirects=False) as client:
        yield Env(cfg, hub, phone, client, agent, admin)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def logged_in(env: Env | TestClient, name: str) -> TestClient:
    """A fresh client (own cookie jar) on the same app, logged in as `name`."""
    app = env.client.app if isinstance(env, Env) else env.app
    client = TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)
    page = client.get("/console/login")
    done = client.post("/console/login", data={"name": name, "password": PASSWORD, "csrf": csrf_of(page.text),
                                               "next": "/console/"})
    assert done.status_code == 303 and done.headers["location"] == "/console/", done.text[:300]
    return client


def wait_for(check, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# -- accounts -------------------------------------------------------------------------------------------

def test_users_add_from_the_command_line(env: Env, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    name = unique_user("cli")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    config = env.cfg.root / "config.yaml"
    monkeypatch.setenv("QIUXUE__DATA_DIR", str(env.cfg.data_path))
    assert main(["--config", str(config), "users", "add", name, "--role", "agent", "--password-stdin"]) == 0
    assert "saved agent" in capsys.readouterr().out
    with env.hub.sessions() as s:
        user = s.scalars(select(StaffUser).where(StaffUser.name == name)).one()
    assert user.role == "agent" and user.password_hash.startswith("$argon2") and PASSWORD not in user.password_hash
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["--config", str(config), "users", "add", name, "--role", "admin", "--password-stdin"]) == 2
    assert "at least" in capsys.readouterr().err
    logged_in(env, name)  # the first password still works: the refused change saved nothing


# -- the guard on every route ---------------------------------------------------------------------------

def console_routes(env: Env) -> list[Route]:
    mount = next(r for r in env.client.app.routes if isinstance(r, Mount) and r.path == "/console")
    return [r for r in mount.routes if isinstance(r, Route)]


def concrete(path: str) -> str:
    return "/console" + re.sub(r"\{[^}]+\}", "1", path)


def test_every_console_route_refuses_anonymous_users_and_agents_on_admin_routes(env: Env) -> None:
    routes = console_routes(env)
    guarded = [r for r in routes if hasattr(r.endpoint, "role")]
    public = {(r.path, m) for r in routes if not hasattr(r.endpoint, "role") for m in r.methods or ()}
    assert public == {("/login", "GET"), ("/login", "POST"), ("/login", "HEAD")}  # nothing else unguarded
    assert len(guarded) >= 9 and any(r.endpoint.role == Role.ADMIN for r in guarded)
    anonymous = TestClient(env.client.app, base_url="http://127.0.0.1", follow_redirects=False)
    agent = logged_in(env, env.agent)
    admin = logged_in(env, env.admin)
    for route in guarded:
        for method in sorted((route.methods or set()) - {"HEAD"}):
            url = concrete(route.path)
            got = anonymous.request(method, url)
            assert got.status_code in (302, 303, 401), (method, url, got.status_code)
            if got.status_code in (302, 303):
                assert got.headers["location"].startswith("/console/login")
            if route.endpoint.role == Role.ADMIN:
                assert agent.request(method, url).status_code == 403, (method, url)
                if method == "GET":
                    assert admin.get(url).status_code == 200, url
            if method == "POST":  # every form needs the session's CSRF token, whoever sends it
                for token in ({}, {"csrf": "forged"}):
                    got = admin.post(url, data=token)
                    assert got.status_code == 403 and "CSRF" in got.text, (url, token, got.status_code)
    assert anonymous.get("/console/").status_code == 303  # the home page too


def test_login_form_cookie_csrf_lockout_and_throttle(env: Env) -> None:
    name = unique_user("lock")
    assert add_user(env.cfg, name) == 0
    client = TestClient(env.client.app, base_url="http://127.0.0.1", follow_redirects=False)
    token = csrf_of(client.get("/console/login").text)
    # without the form's CSRF token the login is refused, even with the right password
    refused = client.post("/console/login", data={"name": name, "password": PASSWORD, "csrf": "forged"})
    assert refused.status_code == 403 and client.get("/console/").status_code == 303  # not logged in
    wrong = client.post("/console/login", data={"name": name, "password": "wrong password!", "csrf": token})
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text and "Wrong name or password" in wrong.text
    for _ in range(env.cfg.console.max_failures - 1):
        last = client.post("/console/login", data={"name": name, "password": "still wrong", "csrf": token})
    assert last.status_code == 423 and "锁定" in last.text
    # locked: the right password does not get in either
    assert client.post("/console/login", data={"name": name, "password": PASSWORD, "csrf": token}).status_code == 423
    with env.hub.sessions() as s:
        actions = [a.action for a in s.scalars(select(AuditEntry).where(AuditEntry.target == f"user:{name}"))]
    assert actions.count("login_failed") == env.cfg.console.max_failures and "login_locked" in actions
    # an unlocked account (an admin set a new password) logs in; the cookie is HTTP-only and SameSite=Lax
    assert add_user(env.cfg, name) == 0
    ok = client.post("/console/login", data={"name": name, "password": PASSWORD, "csrf": token})
    cookie = ok.headers["set-cookie"].lower()
    assert ok.status_code == 303 and "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    assert client.get("/console/").status_code == 200
    # a logged-in POST needs the session's (new) token; the one from before the login is void
    assert client.post("/console/logout", data={"csrf": token}).status_code == 403
    home = client.get("/console/").text
    assert client.post("/console/logout", data={"csrf": csrf_of(home)}).status_code == 303
    assert client.get("/console/").status_code == 303  # logged out


def test_the_cookie_is_secure_over_https_and_logins_are_throttled_per_address(env: Env) -> None:
    https = TestClient(env.client.app, base_url="https://127.0.0.1", follow_redirects=False)
    page = https.get("/console/login")
    assert "secure" in page.headers["set-cookie"].lower()
    cfg = env.cfg.with_changes(console={"login_attempts_per_minute": 2})
    from bot.console.auth import Throttle

    throttle = Throttle(cfg.console.login_attempts_per_minute)
    assert throttle.allow("1.2.3.4") and throttle.allow("1.2.3.4") and not throttle.allow("1.2.3.4")
    assert throttle.allow("5.6.7.8")


# -- server-side sessions ---------------------------------------------------------------------------------

def session_cookie(client: TestClient) -> str:
    return next(c.value for c in client.cookies.jar if c.name == COOKIE)


def test_logout_revokes_the_session_also_for_a_copied_cookie(env: Env) -> None:
    client = logged_in(env, env.agent)
    token = session_cookie(client)
    copied = {"cookie": f"{COOKIE}={token}"}
    thief = TestClient(env.client.app, base_url="http://127.0.0.1", follow_redirects=False)
    assert thief.get("/console/", headers=copied).status_code == 200  # a copy works while the session lives
    with env.hub.sessions() as s:  # the database holds the token's hash, never the token
        rows = list(s.scalars(select(ConsoleSession).where(ConsoleSession.account == env.agent)))
    assert token_hash(token) in {r.token_hash for r in rows} and all(token not in r.token_hash for r in rows)
    home = client.get("/console/").text
    assert client.post("/console/logout", data={"csrf": csrf_of(home)}).status_code == 303
    assert session_cookie(client) != token  # the browser gets a new, anonymous token
    assert thief.get("/console/", headers=copied).status_code == 303  # the copied cookie is dead
    assert thief.post("/console/tickets/1/claim", headers=copied, data={"csrf": csrf_of(home)}).status_code == 401
    with env.hub.sessions() as s:
        assert s.get(ConsoleSession, token_hash(token)) is None


def test_a_new_password_or_a_disabled_account_ends_its_sessions(env: Env, capsys: pytest.CaptureFixture[str]
                                                                 ) -> None:
    name = unique_user("ends")
    assert add_user(env.cfg, name) == 0
    first, second = logged_in(env, name), logged_in(env, name)
    assert add_user(env.cfg, name, password="another password 2") == 0  # a new password: both logged out
    assert first.get("/console/").status_code == 303 and second.get("/console/").status_code == 303
    again = TestClient(env.client.app, base_url="http://127.0.0.1", follow_redirects=False)
    token = csrf_of(again.get("/console/login").text)
    assert again.post("/console/login", data={"name": name, "password": "another password 2", "csrf": token}
                      ).status_code == 303
    assert again.get("/console/").status_code == 200
    config = str(env.cfg.root / "config.yaml")
    patch = pytest.MonkeyPatch()
    patch.setenv("QIUXUE__DATA_DIR", str(env.cfg.data_path))
    try:
        assert main(["--config", config, "users", "disable", name]) == 0
        assert main(["--config", config, "users", "disable", "nobody-" + name]) == 2
    finally:
        patch.undo()
    assert "disabled" in capsys.readouterr().out
    assert again.get("/console/").status_code == 303
    with env.hub.sessions() as s:
        assert not s.scalars(select(ConsoleSession).where(ConsoleSession.account == name)).all()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_session_made_by_one_server_is_accepted_by_another_on_the_same_database(
        database: str, env: Env, request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two apps (as two `qiuxue serve` processes: nothing shared but the database and no console secret)."""
    monkeypatch.delenv("QIUXUE_CONSOLE_SECRET", raising=False)
    extra = {"QIUXUE__DATABASE__URL": request.getfixturevalue("pg_url")} if database == "postgresql" else {}
    cfg = make_config(tmp_path, QIUXUE__DATA_DIR=str(tmp_path / "data"), **extra)
    name = unique_user("two")
    assert add_user(cfg, name, "admin") == 0
    answerer = env.hub.dialogue.answerer  # loaded already: the servers differ in everything but the database
    one, two = (TestClient(build_app(cfg, Hub(Dialogue(cfg, answerer=answerer))), base_url="http://127.0.0.1",
                           follow_redirects=False) for _ in range(2))
    first = logged_in(one, name)
    cookie = {"cookie": f"{COOKIE}={session_cookie(first)}"}
    page = two.get("/console/audit", headers=cookie)
    assert page.status_code == 200 and name in page.text  # the other server knows the login
    # a form from one server is accepted by the other (the CSRF token belongs to the session, not the process)
    assert two.post("/console/logout", headers=cookie, data={"csrf": csrf_of(page.text)}).status_code == 303
    assert first.get("/console/").status_code == 303  # logged out on the second: the first refuses it too


# -- the inbox -------------------------------------------------------------------------------------------

def handed_over(hub: Hub, prefix: str, *lines: str) -> tuple[InProcessChat, Ticket, str]:
    """A new in-process worker who says `lines` and then 「转人工」: (the worker, their ticket, their id)."""
    user = unique_user(prefix)
    worker = InProcessChat(hub.dialogue, user)
    for line in (*lines, "转人工"):
        worker.say(line)
    with hub.sessions() as s:
        return worker, s.scalars(select(Ticket).where(Ticket.user_id == user)).one(), user


def test_claim_reply_note_resolve_and_draft_from_the_console(env: Env) -> None:
    worker, ticket, user = handed_over(env.hub, "web", "灵活就业人员可以申请求学圆梦吗")
    agent = logged_in(env, env.agent)
    queue = agent.get("/console/?tab=waiting").text
    assert f"/console/tickets/{ticket.id}" in queue and ticket.reason in queue
    page = agent.get(f"/console/tickets/{ticket.id}").text
    assert "灵活就业人员可以申请求学圆梦吗" in page and ">test<" in page  # transcript, the worker's channel
    token = csrf_of(page)
    assert agent.post(f"/console/tickets/{ticket.id}/claim", data={"csrf": token}).status_code == 303
    wait_for(lambda: any(env.agent in r.text for r in env.phone.pushed[user]))  # "an agent joined"
    assert f"/console/tickets/{ticket.id}" in agent.get("/console/?tab=mine").text
    reply = "可以的，请带上劳动合同到区工会办理，电话 13812345678"
    sent = agent.post(f"/console/tickets/{ticket.id}/reply", data={"csrf": token, "text": reply, "nonce": "n1"})
    assert sent.status_code == 303 and sent.headers["location"].endswith("?n=reply")
    # the same form sent twice (a double click) is recorded once
    assert agent.post(f"/console/tickets/{ticket.id}/reply", data={"csrf": token, "text": reply, "nonce": "n1"}
                      ).headers["location"].endswith("?n=duplicate")
    got = wait_for(lambda: [r.text for r in env.phone.pushed[user] if "劳动合同" in r.text])
    assert len(got) == 1 and "13812345678" not in got[0]  # masked at the edge
    wait_for(lambda: "已送达 · delivered" in agent.get(f"/console/tickets/{ticket.id}/events").text)
    assert agent.post(f"/console/tickets/{ticket.id}/note", data={"csrf": token, "text": "内部：已核实",
                                                                 "nonce": "n2"}).status_code == 303
    empty = agent.post(f"/console/tickets/{ticket.id}/reply", data={"csrf": token, "text": "  ", "nonce": "n3"})
    assert empty.headers["location"].endswith("?e=empty")
    assert "请输入内容" in agent.get(empty.headers["location"]).text
    assert agent.post(f"/console/tickets/{ticket.id}/resolve", data={"csrf": token}).status_code == 303
    drafted = agent.post(f"/console/tickets/{ticket.id}/draft", data={"csrf": token})
    assert drafted.headers["location"].endswith("?n=drafted")
    again = agent.post(f"/console/tickets/{ticket.id}/resolve", data={"csrf": token})
    assert again.headers["location"].endswith("?e=resolved")
    with env.hub.sessions() as s:
        events = list(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)))
        audit = [(a.actor, a.action) for a in s.scalars(select(AuditEntry).where(
            AuditEntry.target == f"ticket:{ticket.id}"))]
    kinds = [e.kind for e in events]
    assert kinds.count(EventKind.AGENT_MESSAGE) == 1 and EventKind.NOTE in kinds and EventKind.DRAFT_FAQ in kinds
    assert all(e.actor == env.agent for e in events if e.kind in (EventKind.CLAIMED, EventKind.NOTE))
    assert not any("内部" in r.text for r in env.phone.pushed[user])  # the note never reaches the worker
    assert audit == [(env.agent, a) for a in ("claim", "reply", "reply", "note", "resolve", "draft")]


def test_a_reply_the_workers_channel_refuses_shows_as_failed_with_why(env: Env) -> None:
    _worker, ticket, user = handed_over(env.hub, "blocked", "我换了工作还能申请吗")
    env.phone.refuse.add(user)  # the worker blocked the bot: the channel refuses for good
    agent = logged_in(env, env.agent)
    token = csrf_of(agent.get(f"/console/tickets/{ticket.id}").text)
    agent.post(f"/console/tickets/{ticket.id}/reply", data={"csrf": token, "text": "您好，请带上新合同", "nonce": "f1"})

    def failed() -> str | None:
        page = agent.get(f"/console/tickets/{ticket.id}/events").text
        return page if "发送失败 · failed" in page else None

    events = wait_for(failed)
    assert "the worker blocked the bot" in events and "已送达 · delivered" not in events
    assert not env.phone.pushed[user] or not any("新合同" in r.text for r in env.phone.pushed[user])


def test_a_claim_in_the_console_is_told_to_the_telegram_staff_group_and_back(env: Env) -> None:
    _worker, ticket, _user = handed_over(env.hub, "both")
    agent = logged_in(env, env.agent)
    token = csrf_of(agent.get(f"/console/tickets/{ticket.id}").text)
    agent.post(f"/console/tickets/{ticket.id}/claim", data={"csrf": token})
    with env.hub.sessions() as s:
        staff = [r.payload.get("text", "") for r in s.scalars(select(OutboxItem).where(
            OutboxItem.channel == TELEGRAM_STAFF, OutboxItem.address == str(ticket.id),
            OutboxItem.kind == OutboxKind.STAFF_TEXT))]
    assert any(env.agent in text for text in staff), staff  # the staff topic hears who claimed it
    # and a claim made in the Telegram group (a Telegram agent id) shows in the console
    _other, second, _id = handed_over(env.hub, "tg")
    env.hub.helpdesk.agents.add("4242")
    env.hub.helpdesk.claim(second.id, "4242", "小李 (Telegram)")
    page = agent.get(f"/console/tickets/{second.id}").text
    assert "处理中 · claimed" in page and "小李 (Telegram)" in page
    assert f"/console/tickets/{second.id}" in agent.get("/console/?tab=claimed").text
    assert f"/console/tickets/{second.id}" not in agent.get("/console/?tab=mine").text


def test_a_console_identity_acts_only_while_its_account_is_active(env: Env) -> None:
    name = f"gone-{uuid.uuid4().hex[:6]}"
    assert add_user(env.cfg, name) == 0
    client = logged_in(env, name)
    assert env.hub.helpdesk.is_agent(f"console:{name}")
    assert not env.hub.helpdesk.is_agent("console:nobody-" + name)
    with env.hub.sessions.begin() as s:
        s.scalars(select(StaffUser).where(StaffUser.name == name)).one().active = False
    assert not env.hub.helpdesk.is_agent(f"console:{name}")
    assert client.get("/console/").status_code == 303  # the open session ends at once


# -- the web chat channel (/chat) -------------------------------------------------------------------------

def test_the_web_chat_answers_with_buttons_and_refuses_bad_requests(env: Env) -> None:
    phone = TestClient(env.client.app, base_url="http://127.0.0.1", follow_redirects=False)
    page = phone.get("/chat")
    assert page.status_code == 200 and "求学圆梦助手" in page.text and "width=device-width" in page.text
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert phone.post("/chat/send", json={"id": "m1", "text": "广东能补多少钱"}).status_code == 202
    assert phone.post("/chat/send", json={"id": "m1", "text": "广东能补多少钱"}).status_code == 202  # a resend
    got = wait_for(lambda: phone.get("/chat/messages?after=0").json()["messages"])
    assert len(got) == 1 and "来源" in got[0]["text"] and got[0]["buttons"]  # handled once, with 👍/👎 …
    label, data = got[0]["buttons"][0][0]
    assert phone.post("/chat/send", json={"id": "m2", "button": data}).status_code == 202
    wait_for(lambda: phone.get(f"/chat/messages?after={got[0]['id']}").json()["messages"])
    for bad in (b"not json", b"[1, 2]", b'{"id": "x"}', b'{"id": "x", "text": 5}', b"\xff\xfe",
                b'{"text": "no id"}'):
        refused = phone.post("/chat/send", content=bad, headers={"content-type": "application/json"})
        assert refused.status_code == 400 and "JSON" in refused.json()["error"], bad
    huge = phone.post("/chat/send", json={"id": "m3", "text": "补" * 20_000})
    assert huge.status_code == 413 and "Too large" in huge.json()["error"]
    stranger = TestClient(env.client.app, base_url="http://127.0.0.1")
    assert stranger.post("/chat/send", json={"id": "s", "text": "hi"}).status_code == 401
    assert stranger.get("/chat/messages?after=0").json() == {"messages": []}  # nobody else's messages


def test_a_web_chat_worker_reaches_the_console_and_gets_the_agents_reply(env: Env) -> None:
    phone = TestClient(env.client.app, base_url="http://127.0.0.1", follow_redirects=False)
    phone.get("/chat")
    phone.post("/chat/send", json={"id": "h1", "text": "转人工"})
    wait_for(lambda: any("排第" in m["text"] for m in phone.get("/chat/messages").json()["messages"]))
    with env.hub.sessions() as s:
        ticket = s.scalars(select(Ticket).where(Ticket.channel == "web").order_by(Ticket.id.desc())).first()
    agent = logged_in(env, env.agent)
    token = csrf_of(agent.get(f"/console/tickets/{ticket.id}").text)
    agent.post(f"/console/tickets/{ticket.id}/reply", data={"csrf": token, "text": "您好，我是工会小王", "nonce": "w1"})
    wait_for(lambda: any("工会小王" in m["text"] for m in phone.get("/chat/messages").json()["messages"]))
    assert "已送达 · delivered" in agent.get(f"/console/tickets/{ticket.id}/events").text
