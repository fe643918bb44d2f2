"""The facts a worker has given, for the worker: listed (/facts, each with a button to change it), worded
("劳动合同期限：24个月"), and what changing one did to the verdict — which condition changed it.

While a change is under way the verdict before it is kept on the conversation (`flow_state["was"]`, a
`snapshot`); when the verdict is given again, `changes` names each condition whose status moved.
Labels and units are data (`knowledge/rules/fields.yaml`: `label`, `label_en`, `unit`).
"""

from __future__ import annotations

from typing import Any

from bot.core.buttons import Change, Menu, encode
from bot.core.messages import Button, Outgoing
from bot.core.store import Conversation
from bot.eligibility import Field, Rules, Verdict
from bot.i18n import t

STATUSES = ("met", "unmet", "undecided")
MARKS = {"met": "✓", "unmet": "✗", "undecided": "?"}


def display(f: Field, value: Any, lang: str) -> str:
    """A recorded value as the worker reads it: 是/否, "24个月", "46岁", a date, a place."""
    if f.type == "bool" and isinstance(value, bool):
        return t("btn_yes" if value else "btn_no", lang)
    if f.type == "int" and f.unit in ("months", "years"):
        return t(f"value_{f.unit}", lang, n=value)
    return str(value)


def recorded(conv: Conversation, rules: Rules) -> list[tuple[Field, Any]]:
    """The facts on record, the place first, then in the order the check asks them."""
    facts = dict(conv.facts or {})
    region = facts.get("region") or conv.region
    out: list[tuple[Field, Any]] = [(rules.fields["region"], region)] if region and "region" in rules.fields else []
    return out + [(f, facts[name]) for name, f in rules.fields.items() if name != "region" and name in facts]


def show(conv: Conversation, rules: Rules) -> Outgoing:
    """/facts: what the bot has recorded, each with a button to change it (or how to start a check)."""
    lang = conv.lang
    items = recorded(conv, rules)
    if not items:
        key = "facts_none_kept" if conv.consent is False else "facts_none"
        return Outgoing(t(key, lang), [[Button(t("btn_check", lang), encode(Menu("check")))]])
    sep = "：" if lang == "zh" else ": "
    lines = [t("facts_title", lang)] + [f"• {f.title(lang)}{sep}{display(f, v, lang)}" for f, v in items]
    if conv.consent is not True:
        lines.append(t("facts_not_kept", lang))
    lines.append(t("facts_how", lang))
    buttons = [Button(t("btn_change", lang, label=f.title(lang)), encode(Change(f.name))) for f, _ in items]
    return Outgoing("\n".join(lines), [buttons[i:i + 2] for i in range(0, len(buttons), 2)])


def snapshot(verdict: Verdict) -> dict[str, Any]:
    """What a verdict said, condition by condition (by position in the place's rules), to compare later."""
    status: dict[str, str] = {}
    for i, c in enumerate(verdict.rules.conditions if verdict.rules else []):
        for name in STATUSES:
            if any(c is x for x in getattr(verdict, name)):
                status[str(i)] = name
    return {"region": verdict.region, "eligible": verdict.eligible, "status": status}


def changes(was: dict[str, Any] | None, verdict: Verdict, lang: str) -> list[str]:
    """Lines saying what a change of facts did: the conditions whose status moved, or that nothing did."""
    if not was:
        return []
    if was.get("region") != verdict.region:
        return [t("change_region", lang, before=was.get("region") or "?", after=verdict.region or "?")]
    now = snapshot(verdict)["status"]
    before = was.get("status") or {}
    moved = [i for i in sorted(now, key=int)  # a condition newly checked counts only when it is not met
             if now[i] != before.get(i) and (i in before or now[i] != "met")]
    if not moved:
        return [t("change_none" if was.get("eligible") == verdict.eligible else "change_result", lang)]
    en = lang == "en"
    conditions = verdict.rules.conditions if verdict.rules else []
    lines = [t("change_verdict" if was.get("eligible") != verdict.eligible else "change_conditions", lang)]
    for i in moved:
        c = conditions[int(i)]
        lines.append(f"{MARKS[now[i]]} {c.says_en if en else c.says} [{c.source}]")
    return lines

