"""`qiuxue kb lint`: the shipped knowledge base is clean, and each check fires on a bad example."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from bot.cli import main as qiuxue
from bot.kb_lint import KnowledgePaths, lint
from tests.conftest import PROJECT


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    """A copy of the shipped knowledge base that a test may spoil."""
    target = tmp_path / "knowledge"
    shutil.copytree(PROJECT / "knowledge", target)
    return target


def edit_yaml(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def checks(kb: Path) -> list[tuple[str, str]]:
    return [(f.check, f.path) for f in lint(KnowledgePaths.under(kb))]


def test_the_shipped_knowledge_base_passes(capsys) -> None:  # type: ignore[no-untyped-def]
    assert qiuxue(["kb", "lint", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_condition_that_can_never_fail_is_flagged(kb: Path) -> None:
    every_route = {"field": "study_route", "in": ["成人高考", "开放教育", "自考", "网络教育", "学历文凭考试"],
                   "says": "学历通过成人高等教育、自考、学历文凭考试、网络教育或开放教育取得", "source": "GD1"}
    edit_yaml(kb / "rules" / "guangdong.yaml", lambda d: d["conditions"].append(every_route))
    assert checks(kb) == [("never_fails", "rules/guangdong.yaml")]


def test_a_condition_whose_when_never_applies_is_flagged(kb: Path) -> None:
    def spoil(d: dict) -> None:
        d["conditions"][-1]["when"] = {"region": "杭州"}  # 杭州 has its own rules: 浙江's are never read for it
    edit_yaml(kb / "rules" / "zhejiang.yaml", spoil)
    found = lint(KnowledgePaths.under(kb))
    assert [(f.check, f.path) for f in found] == [("never_fails", "rules/zhejiang.yaml")]
    assert "never applies" in found[0].message


def test_a_requirement_a_complete_place_never_asks_is_flagged(kb: Path) -> None:
    edit_yaml(kb / "rules" / "guangdong.yaml",
              lambda d: d.update(conditions=[c for c in d["conditions"] if c["field"] != "has_diploma"]))
    found = lint(KnowledgePaths.under(kb))
    assert [(f.check, f.path) for f in found] == [("unasked_requirement", "rules/guangdong.yaml")]
    assert "取得学历" in found[0].message and "has_diploma" in found[0].message


def test_a_requirement_added_to_the_policy_text_must_be_asked(kb: Path) -> None:
    doc = kb / "policies" / "shandong.md"
    doc.write_text(doc.read_text(encoding="utf-8").replace(
        "## 申请条件\n", "## 申请条件\n\n要是山东的工会会员（[SD1]）。\n"), encoding="utf-8")
    assert checks(kb) == [("unasked_requirement", "rules/shandong.yaml")]


def test_an_incomplete_place_is_not_held_to_its_text(kb: Path) -> None:
    doc = kb / "policies" / "zhejiang.md"  # 浙江 is complete: false, so its text may name more than it asks
    doc.write_text(doc.read_text(encoding="utf-8").replace(
        "## 申请条件\n", "## 申请条件\n\n要连续缴纳社保（[ZJ1]）。\n"), encoding="utf-8")
    assert checks(kb) == []


def test_a_fact_worded_another_way_is_flagged_but_workers_phrasings_are_not(kb: Path) -> None:
    def spoil(entries: list) -> None:
        entry = next(e for e in entries if e["id"] == "faq-conditions-bengbu")
        entry["answer"] = entry["answer"].replace("签订1年以上的劳动合同", "劳动合同满1年")
        entry["phrasings"].append("合同满一年了 蚌埠能报吗")  # a worker may say it like this
    edit_yaml(kb / "faq" / "regions.yaml", spoil)
    found = lint(KnowledgePaths.under(kb))
    assert [(f.check, f.path) for f in found] == [("wording", "faq/regions.yaml")]
    assert "劳动合同满1年" in found[0].message and "签订1年以上的劳动合同" in found[0].message


def test_a_preferred_wording_that_contains_a_variant_is_not_flagged(kb: Path) -> None:
    rule = kb / "rules" / "guangzhou.yaml"  # 只能领一次 inside 每人或每个学历层次只能领一次 is the preferred wording
    edit_yaml(rule, lambda d: d.update(benefit="每人补助1,500元，每人或每个学历层次只能领一次（2024年）"))
    assert checks(kb) == []
    edit_yaml(rule, lambda d: d.update(benefit="每人补助1,500元，每人只能领一次（2024年）"))
    assert checks(kb) == [("wording", "rules/guangzhou.yaml")]


def test_the_command_exits_1_with_one_line_per_finding(kb: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    edit_yaml(kb / "rules" / "guangzhou.yaml", lambda d: d.update(benefit="只能享受一次"))
    monkeypatch.setenv("QIUXUE__KNOWLEDGE__RULES_DIR", str(kb / "rules"))
    assert qiuxue(["kb", "lint"]) == 1
    out = capsys.readouterr().out
    assert out.count("wording\trules/guangzhou.yaml") == 1 and "1 finding(s)" in out
