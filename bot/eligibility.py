"""Eligibility: check a worker's profile against a place's rules (`knowledge/rules/*.yaml`, data only).

Each condition is met, unmet, or missing (the profile lacks the field). The verdict is
"no" if any condition is unmet; "unknown" if facts are missing, if the place's sources list only
some of its conditions (`complete: false`), or if the place has no rules of its own (we never
lend a province's rules to a city as if they were the city's); "yes" only when every condition of
a complete rule set is met. `missing` lists the fields still needed, in the order they are asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from bot.regions import Gazetteer
from ingest.schema import OPERATORS

YES, NO, UNKNOWN = "yes", "no", "unknown"
TRUE_WORDS = {"true", "yes", "y", "1", "是", "是的", "对", "有", "嗯"}
FALSE_WORDS = {"false", "no", "n", "0", "否", "不是", "没有", "不", "无"}


class ProfileError(ValueError):
    """A profile value that is not valid for its field; `code` says how (type | range | choice | place)."""

    def __init__(self, message: str, code: str = "type") -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Field:
    name: str
    type: str  # bool | int | enum | date | region
    ask: str
    ask_en: str
    buttons: list[str] = field(default_factory=list)
    help: str = ""
    help_en: str = ""
    min: int | None = None
    max: int | None = None

    def parse(self, value: Any) -> Any:
        """A profile value as its typed form; raises ProfileError with a clear message."""
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ProfileError(f"{self.name}: expected yes/no, got {value!r}")
        if self.type == "int":
            try:
                number = int(str(value).strip())
            except ValueError:
                raise ProfileError(f"{self.name}: expected a whole number, got {value!r}") from None
            if (self.min is not None and number < self.min) or (self.max is not None and number > self.max):
                raise ProfileError(f"{self.name}: {number} is outside {self.min}–{self.max}", "range")
            return number
        if self.type == "date":
            try:
                return date.fromisoformat(str(value).strip())
            except ValueError:
                raise ProfileError(f"{self.name}: expected a date like 2024-09-01, got {value!r}") from None
        if self.type == "enum":
            text = str(value).strip()
            if text not in self.buttons:
                raise ProfileError(f"{self.name}: expected one of {', '.join(self.buttons)}, got {value!r}", "choice")
            return text
        return str(value).strip()


@dataclass
class Condition:
    field: str
    says: str
    says_en: str
    source: str
    op: str
    value: Any
    when: dict[str, Any] = field(default_factory=dict)

    def holds(self, actual: Any) -> bool:
        expected = self.value
        if isinstance(actual, date) and not isinstance(expected, list):
            expected = date.fromisoformat(str(expected))
        match self.op:
            case "equals":
                return actual == expected
            case "in":
                return actual in expected
            case "not_in":
                return actual not in expected
            case "min" | "on_or_after":
                return actual >= expected
            case "max" | "on_or_before":
                return actual <= expected
        raise ValueError(f"unknown operator {self.op!r}")





@dataclass
class RuleSet:
    region: str
    scope: str
    year: Any
    doc: str
    sources: list[str]
    complete: bool
    benefit: str
    benefit_en: str
    selection: str
    selection_en: str
    conditions: list[Condition]
    notes: list[dict[str, str]]
    covers: list[str]

    @classmethod
    def from_yaml(cls, data: dict[str, Any]) -> RuleSet:
        conditions = []
        for c in data.get("conditions") or []:
            ops = [op for op in OPERATORS if op in c]
            if len(ops) != 1:
                raise ValueError(f"{data.get('region')}: condition on {c.get('field')} needs one operator")
            conditions.append(Condition(c["field"], c["says"], c.get("says_en", c["says"]), str(c.get("source", "")),
                                        ops[0], c[ops[0]], dict(c.get("when") or {})))
        return cls(str(data["region"]), str(data.get("scope", "")), data.get("year"), str(data.get("doc", "")),
                   [str(s) for s in data.get("sources") or []], bool(data.get("complete", False)),
                   str(data.get("benefit", "")), str(data.get("benefit_en", "")),
                   str(data.get("selection", "")), str(data.get("selection_en", "")),
                   conditions, list(data.get("notes") or []), [str(x) for x in data.get("covers") or []])


@dataclass
class Verdict:
    region: str | None
    eligible: str
    met: list[Condition] = field(default_factory=list)
    unmet: list[Condition] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    rules: RuleSet | None = None
    reason: str = ""  # why "unknown" when nothing is missing: no_rules | incomplete

    def as_json(self, lang: str = "zh") -> dict[str, Any]:
        def cond(c: Condition) -> dict[str, str]:
            return {"field": c.field, "condition": c.says_en if lang == "en" else c.says, "source": c.source}

        r = self.rules
        return {
            "region": self.region, "eligible": self.eligible,
            "met": [cond(c) for c in self.met], "unmet": [cond(c) for c in self.unmet], "missing": self.missing,
            "benefit": (r.benefit_en if lang == "en" else r.benefit) if r else "",
            "selection": (r.selection_en if lang == "en" else r.selection) if r else "",
            "notes": [n.get("says_en" if lang == "en" else "says", "") for n in r.notes] if r else [],
            "complete": bool(r and r.complete), "reason": self.reason,
            "sources": ([{"id": r.doc, "ref": ",".join(r.sources)}] if r else []),
        }


class Rules:
    """All rule files and the field catalogue, loaded once."""

    def __init__(self, rules_dir: Path, gazetteer: Gazetteer) -> None:
        raw_fields = yaml.safe_load((rules_dir / "fields.yaml").read_text(encoding="utf-8")) or {}
        self.fields = {name: Field(name, **spec) for name, spec in raw_fields.items()}
        self.gazetteer = gazetteer
        self.by_place: dict[str, RuleSet] = {}
        for path in sorted(rules_dir.glob("*.yaml")):
            if path.name == "fields.yaml":
                continue
            rules = RuleSet.from_yaml(yaml.safe_load(path.read_text(encoding="utf-8")))
            for c in rules.conditions:
                if c.field not in self.fields:
                    raise ValueError(f"{path.name}: unknown field {c.field!r}")
            for place in (rules.region, *rules.covers):
                self.by_place[place] = rules

    def for_region(self, region: str | None) -> RuleSet | None:
        """The rules of exactly this place (or of a document that covers it), never a parent's."""
        if not region:
            return None
        return self.by_place.get(self.gazetteer.canonical(region) or region)

    def parse_profile(self, profile: dict[str, Any]) -> dict[str, Any]:
        """Typed profile values; unknown fields and empty values are dropped, bad values raise."""
        typed: dict[str, Any] = {}
        for name, value in profile.items():
            if name not in self.fields or value is None or value == "":
                continue
            typed[name] = self.fields[name].parse(value)
        if "region" in typed:
            typed["region"] = self.gazetteer.canonical(typed["region"]) or typed["region"]
        return typed

    def check(self, profile: dict[str, Any]) -> Verdict:
        facts = self.parse_profile(profile)
        region = facts.get("region")
        if region is None:
            return Verdict(None, UNKNOWN, missing=["region"])
        rules = self.for_region(region)
        if rules is None:
            return Verdict(region, UNKNOWN, reason="no_rules")
        verdict = Verdict(region, UNKNOWN, rules=rules)
        missing: list[str] = []
        for c in rules.conditions:
            gate = [k for k in c.when if k not in facts]
            if gate:
                missing.extend(gate)
                continue
            if any(facts[k] != v for k, v in c.when.items()):
                continue  # does not apply to this worker
            if c.field not in facts:
                missing.append(c.field)
            elif c.holds(facts[c.field]):
                verdict.met.append(c)
            else:
                verdict.unmet.append(c)
        order = list(self.fields)
        verdict.missing = sorted(set(missing), key=order.index)
        if verdict.unmet:
            verdict.eligible = NO
        elif verdict.missing:
            verdict.eligible = UNKNOWN
        elif not rules.complete:
            verdict.reason = "incomplete"
        else:
            verdict.eligible = YES
        return verdict
