"""The console's admin pages without a browser: versions, refresh with progress, rollback, uploads (a bad file
refused with its name and why, the live index untouched), draft FAQ approval → refresh → the bot answers it,
and the insight page. Runs on a private copy of the session's indexed knowledge base (its own index and
database), so refreshes and rollbacks here never move the live version other tests use.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
import yaml
from sqlalchemy import select
from starlette.testclient import TestClient

from bot.answering import ANSWER, Answerer
from bot.cli import main
from bot.core.hub import Hub
from bot.eval_reports import EvalReport
from bot.evaluation import evaluate_served, question_sets
from bot.helpdesk.store import DraftFaq
from bot.kb_admin import KbAdmin
from bot.server import build_app
from common.settings import Config
from common.yamlio import read_yaml
from tests.conftest import PROJECT
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
    root: Path


def small_eval_set(path: Path, answerable: int = 8, refused: int = 4) -> Path:
    """The first questions of the eval set (some answerable, some no_answer) for a quick real run."""
    items = read_yaml(PROJECT / "tests" / "eval" / "questions.yaml")
    chosen = [i for i in items if i["expect"] != "no_answer"][:answerable] + \
        [i for i in items if i["expect"] == "no_answer"][:refused]
    path.write_text(yaml.safe_dump(chosen, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def kbenv(kb_cfg: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbEnv]:
    root = tmp_path_factory.mktemp("console-kb")
    small = small_eval_set(root / "small-eval.yaml", answerable=5, refused=2)
    cfg = private_copy(kb_cfg, root, QIUXUE__CONSOLE__EVAL_SET=str(small), QIUXUE__CONSOLE__EVAL_FROZEN="")
    hub, _phone, agent, admin = staffed_hub(cfg, "kb")
    with TestClient(build_app(cfg, hub), base_url="http://127.0.0.1", follow_redirects=False) as client:
        yield KbEnv(cfg, hub, logged_in(client, admin), logged_in(client, agent), root / "uploads", root)


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


def eval_rows(env: KbEnv) -> list[EvalReport]:
    with env.hub.sessions() as s:
        return list(s.scalars(select(EvalReport).order_by(EvalReport.id)))


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def test_the_insight_page_shows_the_eval_of_the_live_version(kbenv: KbEnv, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    version = live(kbenv)
    page = kbenv.client.get("/console/insight").text
    assert f'id="eval-version">{version}<' in page and "还没有评测 · Not evaluated yet" in page
    # a real `qiuxue eval --served` run on this version, on two small question sets
    dev = small_eval_set(kbenv.root / "dev.yaml")
    frozen = small_eval_set(kbenv.root / "frozen.yaml", answerable=3, refused=3)
    monkeypatch.setenv("QIUXUE__DATA_DIR", str(kbenv.cfg.data_path))
    assert main(["--config", str(kbenv.cfg.root / "config.yaml"), "eval", "--served", "--set", str(dev),
                 "--frozen", str(frozen), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    (report,) = eval_rows(kbenv)
    assert report.version == version == printed["version"] and report.created_by == "qiuxue eval"
    assert report.summary == printed and report.summary["sets"]["dev"]["questions"] == 12
    assert report.summary["sets"]["frozen"]["questions"] == 6
    # the stored numbers are what the evaluation measures on this version (latency aside)
    shared = Answerer(kbenv.cfg, knowledge=kbenv.hub.dialogue.answerer.knowledge)  # no second index load
    again = evaluate_served(kbenv.cfg, question_sets(kbenv.cfg, str(dev), str(frozen)), shared)
    for name in ("dev", "frozen"):
        for key in ("answered", "wrong_rate", "no_answer_recall", "no_answer_precision", "hit@1"):
            assert again["sets"][name][key] == report.summary["sets"][name][key], (name, key)
    page = kbenv.client.get("/console/insight").text
    assert "Not evaluated yet" not in page and f'id="eval-version">{version}<' in page
    for name in ("dev", "frozen"):
        m = report.summary["sets"][name]
        row = page.split(f'<tr data-set="{name}">', 1)[1].split("</tr>", 1)[0]
        assert [percent(m[k]) in row for k in ("answered", "wrong_rate", "no_answer_recall")] == [True] * 3, row
    # the report belongs to its version: another live version has none, until it is evaluated itself
    token = csrf_of(kbenv.client.get("/console/kb").text)
    older = next(v["version"] for v in KbAdmin(kbenv.cfg).status()["versions"]
                 if v["status"] == "complete" and v["version"] != version)
    kbenv.client.post("/console/kb/rollback", data={"csrf": token, "to": older})
    page = kbenv.client.get("/console/insight").text
    assert f'id="eval-version">{older}<' in page and "还没有评测 · Not evaluated yet" in page
    # … from the console: "run eval" runs `qiuxue eval --served` (console.eval_set) with progress
    token = csrf_of(page)
    assert kbenv.agent.post("/console/insight/eval", data={"csrf": token}).status_code == 403
    assert kbenv.client.post("/console/insight/eval", data={"csrf": token}).status_code == 303
    deadline, seen = time.monotonic() + 120, []
    while time.monotonic() < deadline:
        seen.append(kbenv.client.get("/console/insight/eval/progress").json())
        if not seen[-1]["running"]:
            break
        time.sleep(0.05)
    assert seen[-1]["stage"] == "done" and seen[-1]["done"] == seen[-1]["total"] == 7, seen[-1]
    latest = eval_rows(kbenv)[-1]
    assert latest.version == older and latest.created_by.startswith("console:")
    assert latest.summary["sets"]["dev"]["questions"] == 7 and "frozen" not in latest.summary["sets"]
    page = kbenv.client.get("/console/insight").text
    assert f'id="eval-version">{older}<' in page and "Not evaluated yet" not in page
    kbenv.client.post("/console/kb/rollback", data={"csrf": token, "to": version})
    assert 'data-set="frozen"' in kbenv.client.get("/console/insight").text  # the first report again
