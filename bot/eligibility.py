"""Eligibility: check a worker's profile against a place's rules (`knowledge/rules/*.yaml`, data only).

Each condition is met, unmet, undecided, or missing (the profile lacks the field). A condition
marked `otherwise: unknown` is *undecided* when it fails: the sources do not settle that case, so it
turns the verdict into "can't tell" with the condition's explanation, never into "no". The verdict
is "no" if any condition is unmet; "unknown" if facts are missing, if a condition is undecided, if
a note the bot cannot check decides the case (`blocks_yes: true`), if the place's sources list only
some of its conditions (`complete: false`), or if the place has no rules of its own (we never lend
a province's rules to a city as if they were the city's); "yes" only when every condition of a
complete rule set is met. `missing` lists the fields still needed, in the order they are asked.
A rule file may also word a field's question or help for its own place (`fields:`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from bot import values
from bot.regions import Gazetteer
from common.yamlio import read_yaml
from ingest.rule_operators import OPERATORS

YES, NO, UNKNOWN = "yes", "no", "unknown"
FIELD_TEXTS = ("ask", "ask_en", "help", "help_en")  # what a rule file may word for its own place


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
    label: str = ""  # what the worker calls this fact ("劳动合同期限"), in /facts and corrections
    label_en: str = ""
    names: list[str] = field(default_factory=list)  # words that name it in a correction ("合同", "岁", "i'm")
    unit: str = ""  # int fields: months ("两年" = 24) or years (an age, "46岁")

    def title(self, lang: str) -> str:
        return (self.label_en or self.label if lang == "en" else self.label) or self.name

    def read(self, text: str, loose: bool = False) -> Any:
        """The value a worker's words give for this field, or None (not range-checked; `loose`: inside a
        sentence). Regions are the gazetteer's (`EligibilityFlow`)."""
        if self.type == "bool":
            return values.yes_no(text, loose)
        if self.type == "int":
            reader = {"months": values.months, "years": values.age}.get(self.unit, values.age)
            return reader(text, loose)
        if self.type == "date":
            return values.when(text, loose)
        if self.type == "enum":
            whole = values.clean(text)
            exact = [b for b in self.buttons if b.lower() == whole]
            inside = [b for b in self.buttons if b.lower() in whole] if loose else []
            return (exact or inside or [None])[0] if len(exact) == 1 or len(inside) == 1 else None
        return None

    def parse(self, value: Any) -> Any:
        """A profile value as its typed form; raises ProfileError with a clear message."""
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            answer = values.yes_no(str(value))
            if answer is None:
                raise ProfileError(f"{self.name}: expected yes/no, got {value!r}")
            return answer
        if self.type == "int":
            try:
                number = int(str(value).strip())
            except ValueError:
                number = self.read(str(value))
            if number is None or isinstance(value, bool | float):
                raise ProfileError(f"{self.name}: expected a whole number, got {value!r}")
            if (self.min is not None and number < self.min) or (self.max is not None and number > self.max):
                raise ProfileError(f"{self.name}: {number} is outside {self.min}–{self.max}", "range")
            return number
        if self.type == "date":
            day = value if isinstance(value, date) else _iso(str(value))  # a profile's date: YYYY-MM-DD
            if day is None:
                raise ProfileError(f"{self.name}: expected a date like 2024-09-01, got {value!r}")
            return day
        if self.type == "enum":
            text = str(value).strip()
            if text not in self.buttons:
                raise ProfileError(f"{self.name}: expected one of {', '.join(self.buttons)}, got {value!r}", "choice")
            return text
        return str(value).strip()


def _iso(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


@dataclass
class Condition:
    field: str
    says: str
    says_en: str
    source: str
    op: str
    value: Any
    when: dict[str, Any] = field(default_factory=dict)
    otherwise: str = NO  # what failing means: "no", or "unknown" when the sources leave that case open
    otherwise_says: str = ""  # why it is open (shown to the worker when the condition is undecided)
    otherwise_says_en: str = ""

    def explain(self, lang: str) -> str:
        """The worker-facing text: the explanation of an open case, else the condition itself."""
        if lang == "en":
            return self.otherwise_says_en or self.otherwise_says or self.says_en
        return self.otherwise_says or self.says

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
    notes: list[dict[str, Any]]
    covers: list[str]
    field_texts: dict[str, dict[str, str]] = field(default_factory=dict)  # this place's wording of fields

    @classmethod
    def from_yaml(cls, data: dict[str, Any]) -> RuleSet:
        conditions = []
        for c in data.get("conditions") or []:
            ops = [op for op in OPERATORS if op in c]
            if len(ops) != 1:
                raise ValueError(f"{data.get('region')}: condition on {c.get('field')} needs one operator")
            otherwise = str(c.get("otherwise", NO))
            if otherwise not in (NO, UNKNOWN):
                raise ValueError(f"{data.get('region')}: condition on {c['field']}: otherwise must be no or unknown")
            if otherwise == UNKNOWN and not c.get("otherwise_says"):
                raise ValueError(f"{data.get('region')}: condition on {c['field']}: otherwise: unknown needs "
                                 "otherwise_says (why the sources leave it open)")
            conditions.append(Condition(c["field"], c["says"], c.get("says_en", c["says"]), str(c.get("source", "")),
                                        ops[0], c[ops[0]], dict(c.get("when") or {}), otherwise,
                                        str(c.get("otherwise_says", "")), str(c.get("otherwise_says_en", ""))))
        field_texts: dict[str, dict[str, str]] = {}
        for name, texts in (data.get("fields") or {}).items():
            unknown = set(texts) - set(FIELD_TEXTS)
            if unknown:
                raise ValueError(f"{data.get('region')}: fields.{name}: only {', '.join(FIELD_TEXTS)} can be "
                                 f"worded per place, not {', '.join(sorted(unknown))}")
            field_texts[str(name)] = {k: str(v) for k, v in texts.items()}
        return cls(str(data["region"]), str(data.get("scope", "")), data.get("year"), str(data.get("doc", "")),
                   [str(s) for s in data.get("sources") or []], bool(data.get("complete", False)),
                   str(data.get("benefit", "")), str(data.get("benefit_en", "")),
                   str(data.get("selection", "")), str(data.get("selection_en", "")),
                   conditions, list(data.get("notes") or []), [str(x) for x in data.get("covers") or []],
                   field_texts)

    def open_notes(self) -> list[dict[str, Any]]:
        """Notes that decide the case but cannot be checked from answers: they keep a "yes" open."""
        return [n for n in self.notes if n.get("blocks_yes")]


@dataclass
class Verdict:
    region: str | None
    eligible: str
    met: list[Condition] = field(default_factory=list)
    unmet: list[Condition] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    rules: RuleSet | None = None
    undecided: list[Condition] = field(default_factory=list)  # failed, but the sources leave that case open
    reason: str = ""  # why "unknown" when nothing is missing: no_rules | undecided | unchecked | incomplete

    def open_points(self, lang: str = "zh") -> list[str]:
        """Why the verdict stays open although nothing is missing: undecided conditions, deciding notes."""
        key = "says_en" if lang == "en" else "says"
        points = [c.explain(lang) for c in self.undecided]
        if self.reason == "unchecked" and self.rules:
            points += [str(n.get(key) or n.get("says", "")) for n in self.rules.open_notes()]
        return points

    def other_notes(self, lang: str = "zh") -> list[str]:
        """The rule file's notes ("also needed"), less those already given as open points."""
        shown = self.rules.open_notes() if self.rules and self.reason == "unchecked" else []
        key = "says_en" if lang == "en" else "says"
        return [str(n.get(key) or n.get("says", "")) for n in (self.rules.notes if self.rules else []) if n not in shown]

    def as_json(self, lang: str = "zh") -> dict[str, Any]:
        def cond(c: Condition) -> dict[str, str]:
            return {"field": c.field, "condition": c.says_en if lang == "en" else c.says, "source": c.source}

        r = self.rules
        return {
            "region": self.region, "eligible": self.eligible,
            "met": [cond(c) for c in self.met], "unmet": [cond(c) for c in self.unmet], "missing": self.missing,
            "undecided": [{**cond(c), "why": c.explain(lang)} for c in self.undecided],
            "open": self.open_points(lang),
            "benefit": (r.benefit_en if lang == "en" else r.benefit) if r else "",
            "selection": (r.selection_en if lang == "en" else r.selection) if r else "",
            "notes": [n.get("says_en" if lang == "en" else "says", "") for n in r.notes] if r else [],
            "complete": bool(r and r.complete), "reason": self.reason,
            "sources": ([{"id": r.doc, "ref": ",".join(r.sources)}] if r else []),
        }


class Rules:
    """All rule files and the field catalogue, loaded once."""

    def __init__(self, rules_dir: Path, gazetteer: Gazetteer) -> None:
        raw_fields = read_yaml(rules_dir / "fields.yaml") or {}
        self.fields = {name: Field(name, **spec) for name, spec in raw_fields.items()}
        self.gazetteer = gazetteer
        self.by_place: dict[str, RuleSet] = {}
        for path in sorted(rules_dir.glob("*.yaml")):
            if path.name == "fields.yaml":
                continue
            rules = RuleSet.from_yaml(read_yaml(path))
            named = [c.field for c in rules.conditions] + [k for c in rules.conditions for k in c.when]
            for name in [*named, *rules.field_texts]:
                if name not in self.fields:
                    raise ValueError(f"{path.name}: unknown field {name!r}")
            for place in (rules.region, *rules.covers):
                self.by_place[place] = rules

    def field_for(self, name: str, region: str | None) -> Field:
        """The field as the place asks it: its rule file's own wording of the question and help, if any."""
        shared = self.fields[name]
        rules = self.for_region(region)
        texts = rules.field_texts.get(name) if rules else None
        return replace(shared, **texts) if texts else shared

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
            if any(k in facts and facts[k] != v for k, v in c.when.items()):
                continue  # does not apply to this worker
            gate = [k for k in c.when if k not in facts]
            if gate:
                missing.append(gate[0])  # `when` is asked in its own order: a later key may never matter
                continue
            if c.field not in facts:
                missing.append(c.field)
            elif c.holds(facts[c.field]):
                verdict.met.append(c)
            elif c.otherwise == UNKNOWN:
                verdict.undecided.append(c)
            else:
                verdict.unmet.append(c)
        order = list(self.fields)
        verdict.missing = sorted(set(missing), key=order.index)
        if verdict.unmet:
            verdict.eligible = NO
        elif verdict.missing:
            verdict.eligible = UNKNOWN
        elif verdict.undecided:
            verdict.reason = "undecided"
        elif rules.open_notes():
            verdict.reason = "unchecked"
        elif not rules.complete:
            verdict.reason = "incomplete"
        else:
            verdict.eligible = YES
        return verdict
