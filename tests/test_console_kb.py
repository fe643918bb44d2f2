"""The console's admin pages without a browser: versions, refresh with progress, rollback, uploads (a bad file
refused with its name and why, the live index untouched), draft FAQ approval → refresh → the bot answers it,
and the insight page. Runs on a private copy of the session's indexed knowledge base (its own index and
database), so refreshes and rollbacks here never move the live version other tests use.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from bot.answering import ANSWER, Answerer
from bot.core.hub import Hub
from bot.helpdesk.store import DraftFaq
from bot.kb_admin import KbAdmin
from bot.server import build_app
from common.settings import Config
from tests.test_console import csrf_of, logged_in, private_copy, staffed_hub

GOOD_POLICY = """---
id: console-upload-test
title: 测试市求学圆梦补助（上传测试）
scope: city
region: 广州
parent: 广东
year: 2026
sources: [T1]
---

## 补助标准

测试市对取得毕业证书的职工补助学费的一半，最高三千元（上传测试文件）。
"""


@dataclass
class KbEnv:
    cfg: Config
    hub: Hub
    client: TestClient  # logged in as an admin
    agent: TestClient   # logged in as an agent
    uploads: Path


@pytest.fixture(scope="module")
def kbenv(kb_cfg: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbEnv]:
    root = tmp_path_factory.mktemp("console-kb")
    cfg = private_copy(kb_cfg, root)
    hub, _phone, agent, admin = staffed_hub(cfg, "kb")
    with TestClient(build_app(cfg, hub), base_url="http://127.0.0.1", follow_redirects=False) as client:
        yield KbEnv(cfg, hub, logged_in(client, admin), logged_in(client, agent), root / "uploads")


def live(env: KbEnv) -> str:
    return KbAdmin(env.cfg).status()["live"]


def refreshed(env: KbEnv, token: str) -> dict:
    assert env.client.post("/console/kb/refresh", data={"csrf": token}).status_code == 303
    deadline = time.monotonic() + 180
    seen: list[dict] = []
    while time.monotonic() < deadline:
        state = env.client.get("/console/kb/progress").json()
        seen.append(state)
        if not state["running"]:
            return {"final": state, "seen": seen}
        time.sleep(0.1)
    raise AssertionError(f"the refresh did not finish: {seen[-1]}")


def test_upload_refresh_rollback_and_a_bad_file_refused(kbenv: KbEnv) -> None:
    before = live(kbenv)
    page = kbenv.client.get("/console/kb")
    assert page.status_code == 200 and before in page.text and "现用 · live" in page.text
    assert kbenv.agent.get("/console/kb").status_code == 403
    token = csrf_of(page.text)
    for name, body, why in (("broken.pdf", b"%PDF-1.4 this is not really a pdf", "broken.pdf: "),
                            ("virus.exe", b"MZ...", "only .md, .pdf, .docx"),
                            ("empty.md", b"", "the file is empty"),
                            ("nofront.md", b"---\nscope: city\n---\n", "nofront.md: ")):
        got = kbenv.client.post("/console/kb/upload", data={"csrf": token}, files={"file": (name, body)})
        problem = unquote_plus(got.headers["location"].split("p=", 1)[-1])
        assert got.status_code == 303 and why in problem, (name, problem)
        assert "已拒绝 · Refused" in kbenv.client.get(got.headers["location"]).text
    assert not kbenv.uploads.exists() or not any(kbenv.uploads.iterdir())  # nothing kept
    assert live(kbenv) == before  # the live index untouched
    # without the CSRF token nothing happens
    assert kbenv.client.post("/console/kb/upload", files={"file": ("x.md", GOOD_POLICY.encode())}).status_code == 403
    ok = kbenv.client.post("/console/kb/upload", data={"csrf": token},
                           files={"file": ("ceshi.md", GOOD_POLICY.encode())})
    assert "Uploaded ceshi.md" in unquote_plus(ok.headers["location"])
    assert (kbenv.uploads / "ceshi.md").exists() and live(kbenv) == before  # kept, not yet published
    run = refreshed(kbenv, token)
    final = run["final"]
    assert final["stage"] == "done" and "now live" in final["result"], final
    assert final["total"] > 0 and final["done"] == final["total"]  # the bar reached the end
    after = live(kbenv)
    assert after != before and after in kbenv.client.get("/console/kb").text
    back = kbenv.client.post("/console/kb/rollback", data={"csrf": token, "to": before})
    assert back.status_code == 303 and live(kbenv) == before
    assert "is live again" in unquote_plus(back.headers["location"])
    refused = kbenv.client.post("/console/kb/rollback", data={"csrf": token, "to": "v-none"})
    assert "rollback refused" in unquote_plus(refused.headers["location"]) and live(kbenv) == before


def test_a_draft_approved_in_the_console_is_answered_after_a_refresh(kbenv: KbEnv) -> None:
    question = "控制台测试：夜班工人上网课的补贴找谁报销"
    answer = "控制台测试答案：夜班工人的网课补贴向所在企业工会报销，凭缴费发票办理。"
    with kbenv.hub.sessions.begin() as s:
        draft = DraftFaq(ticket_id=0, question=question, answer=answer, region=None, created_by="someone")
        s.add(draft)
        s.flush()
        draft_id = draft.id
    page = kbenv.client.get("/console/kb").text
    assert question in page
    token = csrf_of(page)
    approved = kbenv.client.post("/console/kb/approve", data={"csrf": token, "draft": str(draft_id)})
    assert f"Approved #{draft_id}" in unquote_plus(approved.headers["location"])
    with kbenv.hub.sessions() as s:
        assert s.get(DraftFaq, draft_id).status == "approved"
    assert refreshed(kbenv, token)["final"]["stage"] == "done"
    reply = Answerer(kbenv.cfg).ask(question)
    assert reply.ranked[:1] == [f"faq-helpdesk-{draft_id}"], reply.ranked
    assert reply.action == ANSWER and "网课补贴向所在企业工会报销" in reply.answer, reply.answer
    with kbenv.hub.sessions() as s:
        assert [a for (a,) in s.execute(select(DraftFaq.approved_by).where(DraftFaq.id == draft_id))] != [""]


def test_the_insight_page_shows_the_report_with_a_chart(kbenv: KbEnv) -> None:
    page = kbenv.client.get("/console/insight?days=7")
    assert page.status_code == 200 and "<svg" in page.text and "<rect" in page.text
    assert "转人工原因 · Hand-off reasons" in page.text and "👍/👎" in page.text
    assert kbenv.agent.get("/console/insight").status_code == 403
