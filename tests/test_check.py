"""`qiuxue check --json PROFILE`: the eligibility contract, on the shipped rules."""

from __future__ import annotations

import json

import pytest

from bot.cli import main as qiuxue

KEYS = {"region", "eligible", "met", "unmet", "missing", "benefit", "sources"}
GUANGDONG_OK = {"region": "广东", "union_member": True, "union_realname": True, "contract_months": 24,
                "frontline": True, "has_diploma": True, "claimed_before": False}
SHAANXI_OK = {"region": "陕西", "union_member": True, "contract_months": 36, "public_institution_staff": False,
              "diploma_on": "2024-07-01"}


def check(profile: dict, capsys) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    code = qiuxue(["check", "--json", json.dumps(profile, ensure_ascii=False)])
    return code, json.loads(capsys.readouterr().out)


def test_a_complete_rule_set_all_met_is_yes(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = check(SHAANXI_OK, capsys)
    assert code == 0 and set(out) >= KEYS
    assert out["eligible"] == "yes" and out["unmet"] == [] and out["missing"] == []
    assert {c["field"] for c in out["met"]} == set(SHAANXI_OK) - {"region"}
    assert all(c["source"] == "SX1" for c in out["met"]) and "1,000" in out["benefit"]
    assert out["sources"][0]["id"] == "shaanxi"


def test_one_failed_condition_is_no_and_named(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = check({**GUANGDONG_OK, "contract_months": 6}, capsys)
    assert out["eligible"] == "no" and [c["field"] for c in out["unmet"]] == ["contract_months"]


def test_missing_facts_are_listed_in_asking_order(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = check({"region": "广东", "union_member": True}, capsys)
    assert out["eligible"] == "unknown"
    assert out["missing"] == ["union_realname", "contract_months", "frontline", "has_diploma", "claimed_before"]
    code, out = check({}, capsys)
    assert out["eligible"] == "unknown" and out["missing"] == ["region"]


def test_incomplete_rules_never_say_yes(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = check({"region": "广州", "claimed_before": False}, capsys)
    assert out["eligible"] == "unknown" and out["missing"] == [] and out["reason"] == "incomplete"


def test_conditions_can_depend_on_other_answers(capsys) -> None:  # type: ignore[no-untyped-def]
    base = {"region": "福州", "target_level": "本科"}
    _, out = check({**base, "current_education": "高中/中专/职高/技校"}, capsys)
    assert out["eligible"] == "no"  # 专升本 needs a 专科 diploma first
    _, out = check({**base, "current_education": "专科"}, capsys)
    assert out["eligible"] == "unknown" and out["unmet"] == []
    _, out = check({"region": "衢州", "union_member": True, "frontline": True, "public_institution_staff": False,
                    "contract_months": 6}, capsys)
    assert out["eligible"] == "no" and out["unmet"][0]["field"] == "contract_months"  # a 衢州-only rule
    _, out = check({"region": "台州", "union_member": True, "frontline": True, "public_institution_staff": False,
                    "contract_months": 6}, capsys)
    assert out["unmet"] == []  # … that does not apply in 台州


def test_a_place_without_rules_is_unknown(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = check({"region": "北京", "union_member": True}, capsys)
    assert code == 0 and out["eligible"] == "unknown" and out["reason"] == "no_rules" and out["sources"] == []


@pytest.mark.parametrize("bad", ['{"region": "广东", "contract_months": "abc"}', '{"age": 300}',
                                 '{"study_route": "函授"}', '{"enrolled_on": "2024/09/01"}', "not json", "[1, 2]"])
def test_invalid_profiles_are_explained(bad: str, capsys) -> None:  # type: ignore[no-untyped-def]
    assert qiuxue(["check", "--json", bad]) == 2
    assert "error" in json.loads(capsys.readouterr().out)
