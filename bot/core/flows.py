"""The two guided flows: the eligibility check (ask only what the place's rules need) and the
application guide (one step at a time, then the document checklist), both resumable.

The check bends: every question has ◀ back (`flow_state["asked"]` remembers the questions answered) and
📋 my answers; a correction ("合同是两年") or a /facts change records the new value and checks again, and
the verdict then says which condition the change moved (`flow_state["was"]`, see `facts.py`). A month
without a day ("2024年7月") is asked again as a date only where the place's rules decide within it.

State lives on the Conversation row (facts, flow, flow_state, guide_progress); nothing here
keeps anything in memory between messages.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from bot.core.buttons import Back, FieldAnswer, GuideStep, Menu, encode
from bot.core.facts import changes, display, snapshot
from bot.core.messages import Button, Outgoing
from bot.core.store import Conversation
from bot.eligibility import NO, YES, Field, ProfileError, Rules, Verdict
from bot.guides import Guide
from bot.i18n import t
from bot.values import Month, month_end

CHECK, APPLY = "check", "apply"
KEPT = ("asked", "was")  # flow state that outlives one question: the questions answered, the verdict before a change


def rows(buttons: list[Button], per_row: int = 3) -> list[list[Button]]:
    return [buttons[i:i + per_row] for i in range(0, len(buttons), per_row)]


def facts_row(lang: str) -> list[Button]:
    return [Button(t("btn_facts", lang), encode(Menu("facts")))]


def menu(lang: str) -> list[list[Button]]:
    return [[Button(t("btn_check", lang), encode(Menu("check"))), Button(t("btn_apply", lang), encode(Menu("apply")))],
            [Button(t("btn_human", lang), encode(Menu("human")))]]


class EligibilityFlow:
    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def profile(self, conv: Conversation) -> dict[str, Any]:
        return {**conv.facts, **({"region": conv.region} if conv.region and "region" not in conv.facts else {})}

    def start(self, conv: Conversation) -> list[Outgoing]:
        conv.flow, conv.flow_state = CHECK, {}
        return [Outgoing(t("check_intro", conv.lang)), *self.next(conv)]

    def next(self, conv: Conversation) -> list[Outgoing]:
        """Ask the first fact still needed, or give the verdict and leave the flow."""
        verdict = self.rules.check(self.profile(conv))
        keep = {k: v for k, v in conv.flow_state.items() if k in KEPT}
        if verdict.missing and verdict.eligible != NO:  # one failed condition settles it: stop asking
            name = verdict.missing[0]
            conv.flow_state = {**keep, "asking": name}
            return [self.question(self.rules.field_for(name, verdict.region), conv.lang)]
        conv.flow, conv.flow_state = None, {}
        reply = self.render(verdict, conv.lang, keep.get("was"))
        if conv.consent is not True:  # no consent: forget the answers once used
            conv.facts = {}
        return [reply]

    def field(self, conv: Conversation, name: str) -> Field:
        """The field as the worker's place words it."""
        return self.rules.field_for(name, self.profile(conv).get("region"))

    def question(self, f: Field, lang: str, current: Any = None) -> Outgoing:
        """The question with its answer buttons, and on every question ◀ back and 📋 my answers."""
        text = f.ask_en if lang == "en" else f.ask
        hint = f.help_en if lang == "en" else f.help
        if f.type == "bool":
            buttons = [[Button(t("btn_yes", lang), encode(FieldAnswer(f.name, 1))),
                        Button(t("btn_no", lang), encode(FieldAnswer(f.name, 0)))]]
        elif f.type in ("enum", "region"):
            buttons = rows([Button(v, encode(FieldAnswer(f.name, i))) for i, v in enumerate(f.buttons)])
            if f.type == "region":
                hint = t("ask_region_other", lang)
        else:
            buttons = []
        if current is not None:
            hint = f"{hint}\n{t('current_answer', lang, value=display(f, current, lang))}".strip()
        nav = [Button(t("btn_back", lang), encode(Back(f.name))), Button(t("btn_facts", lang), encode(Menu("facts")))]
        return Outgoing(f"{text}\n{hint}".strip(), [*buttons, nav])

    def ask_again(self, conv: Conversation) -> Outgoing:
        """The question being asked, once more (after a digression or a correction)."""
        name = str(conv.flow_state.get("asking"))
        return self.question(self.field(conv, name), conv.lang)

    def answer(self, conv: Conversation, value: Any) -> list[Outgoing]:
        """Record the answer to the fact being asked (button value, typed text or a value read from it), go on."""
        name = conv.flow_state.get("asking")
        if name not in self.rules.fields:
            return self.next(conv)
        f = self.field(conv, name)
        try:
            parsed = self._parse(f, value)
        except ProfileError as exc:
            return [self.invalid(conv, f, exc)]
        if self._day_matters(conv, f, parsed):
            again = self.question(f, conv.lang)
            month = f"{parsed.year}-{parsed.month:02d}"
            return [Outgoing(f"{t('date_need_day', conv.lang, month=month)}\n{again.text}", again.buttons)]
        self._record(conv, name, parsed)
        asked = [n for n in conv.flow_state.get("asked", []) if n != name] + [name]
        conv.flow_state = {**conv.flow_state, "asked": asked}
        return self.next(conv)

    def invalid(self, conv: Conversation, f: Field, exc: ProfileError) -> Outgoing:
        """An answer that does not fit: what is wrong, then the question again with the field's help."""
        again = self.question(f, conv.lang)
        return Outgoing(t("invalid_answer", conv.lang, error=self._explain(f, exc, conv.lang), question=again.text),
                        again.buttons)

    def back(self, conv: Conversation) -> list[Outgoing]:
        """◀ Back: ask the previous question of this check again, showing the answer given."""
        asked = list(conv.flow_state.get("asked", []))
        if not asked:
            again = self.ask_again(conv)
            return [Outgoing(f"{t('back_first', conv.lang)}\n{again.text}", again.buttons)]
        previous = asked.pop()
        conv.flow_state = {**conv.flow_state, "asking": previous, "asked": asked}
        current = self.profile(conv).get(previous)
        return [self.question(self.field(conv, previous), conv.lang, current)]

    def change(self, conv: Conversation, name: str) -> list[Outgoing]:
        """A /facts button: ask that fact again; the verdict that follows says what the change did."""
        was = self._snapshot(conv)
        asked = list(conv.flow_state.get("asked", [])) if conv.flow == CHECK else []
        conv.flow, conv.flow_state = CHECK, {"asked": asked, "asking": name, **({"was": was} if was else {})}
        return [self.question(self.field(conv, name), conv.lang, self.profile(conv).get(name))]

    def correct(self, conv: Conversation, values: dict[str, Any]) -> list[Outgoing]:
        """"合同是两年": record the new values and check again — go on asking, or give the new verdict
        with the conditions the change moved."""
        lang = conv.lang
        for name, value in values.items():
            f = self.field(conv, name)
            if self._day_matters(conv, f, value):  # "2024年7月" where the day decides: ask for the date
                return self.change(conv, name)
        was = conv.flow_state.get("was") or self._snapshot(conv)
        said = []
        for name, value in values.items():
            f = self.field(conv, name)
            self._record(conv, name, value)
            said.append(f"{f.title(lang)} → {display(f, value, lang)}")
        state = conv.flow_state if conv.flow == CHECK else {}
        conv.flow, conv.flow_state = CHECK, {**state, **({"was": was} if was else {})}
        replies = self.next(conv)
        first = replies[0]
        sep = "；" if lang == "zh" else "; "
        replies[0] = Outgoing(f"{t('corrected', lang, changes=sep.join(said))}\n{first.text}", first.buttons,
                              first.link, first.meta)
        return replies

    def _snapshot(self, conv: Conversation) -> dict[str, Any] | None:
        """The verdict the facts give now, if they give one (to say later what a change moved)."""
        profile = self.profile(conv)
        verdict = self.rules.check(profile) if profile.get("region") else None
        return snapshot(verdict) if verdict and (verdict.eligible == NO or not verdict.missing) else None

    def _record(self, conv: Conversation, name: str, parsed: Any) -> None:
        if name == "region":
            conv.region = parsed if conv.consent is not False else conv.region
        conv.facts = {**conv.facts, name: parsed.isoformat() if isinstance(parsed, date) else parsed}

    def _day_matters(self, conv: Conversation, f: Field, value: Any) -> bool:
        """A date known to the month only, where the place's rules decide differently within that month."""
        if not isinstance(value, Month):
            return False
        rules = self.rules.for_region(self.profile(conv).get("region"))
        first, last = date(value.year, value.month, 1), month_end(value)
        return any(c.field == f.name and c.holds(first) != c.holds(last) for c in (rules.conditions if rules else []))

    def _parse(self, f: Field, value: Any) -> Any:
        if f.type == "region":
            place = self.rules.gazetteer.resolve(str(value).strip())
            if place is None:
                raise ProfileError(f"unknown place {value!r}", "place")
            return place
        read = f.read(value) if isinstance(value, str) else None  # typed text: "两年", "2024年7月" …
        return f.parse(value if read is None else read)

    def _explain(self, f: Field, exc: ProfileError, lang: str) -> str:
        if exc.code == "place":
            return t("region_unknown", lang, text="")
        if exc.code == "range":
            return t("invalid_range", lang, min=f.min, max=f.max)
        if f.type == "int" and f.unit:
            return t(f"invalid_{f.unit}", lang)
        return t({"bool": "invalid_bool", "int": "invalid_int", "date": "invalid_date"}.get(f.type, "invalid_enum"),
                 lang)

    def render(self, v: Verdict, lang: str, was: dict[str, Any] | None = None) -> Outgoing:
        """The verdict with its reasons and source; after a change of facts, first what the change did."""
        en = lang == "en"
        if v.rules is None:
            return Outgoing(t("verdict_no_rules", lang, region=v.region), [*menu(lang)[1:], facts_row(lang)])
        lines = changes(was, v, lang)
        if v.eligible == YES:
            lines.append(t("verdict_yes", lang))
        elif v.eligible == NO:
            lines.append(t("verdict_no", lang))
            lines += [f"✗ {c.says_en if en else c.says} [{c.source}]" for c in v.unmet]
        else:
            lines.append(t(f"verdict_{v.reason}" if v.reason in ("undecided", "unchecked") else "verdict_incomplete",
                           lang, region=v.region))
            lines += [f"? {p}" for p in v.open_points(lang)]
        if v.met:
            lines.append(t("verdict_met", lang))
            lines += [f"✓ {c.says_en if en else c.says} [{c.source}]" for c in v.met]
        notes = v.other_notes(lang)
        if notes:
            lines.append(t("verdict_notes", lang))
            lines += [f"• {n}" for n in notes if n]
        r = v.rules
        benefit, selection = (r.benefit_en, r.selection_en) if en else (r.benefit, r.selection)
        if benefit:
            lines.append(t("verdict_benefit", lang) + benefit)
        if selection:
            lines.append(t("verdict_selection", lang) + selection)
        lines.append(t("source_prefix", lang) + f"{r.doc} [{', '.join(r.sources)}]")
        return Outgoing("\n".join(lines), [[Button(t("btn_apply", lang), encode(Menu("apply"))),
                                            Button(t("btn_human", lang), encode(Menu("human")))], facts_row(lang)])


class GuideFlow:
    def __init__(self, guides: dict[str, Guide], titles: dict[str, str] | None = None) -> None:
        self.guides = guides
        self.titles = titles or {}

    def start(self, conv: Conversation, ask_region: Outgoing) -> list[Outgoing]:
        if not conv.region:
            conv.flow, conv.flow_state = APPLY, {"asking": "region"}
            return [ask_region]
        guide = self.guides.get(conv.region)
        if guide is None:
            conv.flow, conv.flow_state = None, {}
            return [Outgoing(t("apply_none", conv.lang, region=conv.region), menu(conv.lang)[1:])]
        progress = dict(conv.guide_progress.get(guide.region) or {})
        resumed = bool(progress) and not progress.get("finished")
        if not resumed:
            progress = {"step": 0, "docs": {}}
        conv.flow, conv.flow_state = APPLY, {"guide": guide.region}
        self._save(conv, guide, progress)
        shown = self.show(conv, guide, progress)
        return [Outgoing(t("apply_resume", conv.lang)), *shown] if resumed else shown

    def press(self, conv: Conversation, step: GuideStep) -> list[Outgoing]:
        """Buttons: next, back, a checklist document ticked (have it or not yet)."""
        guide = self.guides.get(str(conv.flow_state.get("guide", "")))
        if guide is None:
            return [Outgoing(t("stale_button", conv.lang))]
        progress = dict(conv.guide_progress.get(guide.region) or {"step": 0, "docs": {}})
        total = len(guide.steps) + len(guide.documents)
        if step.action == "next":
            progress["step"] = min(progress["step"] + 1, total)
        elif step.action == "back":
            progress["step"] = max(progress["step"] - 1, 0)
        elif step.doc >= len(guide.documents) or int(progress["step"]) != len(guide.steps) + step.doc:
            return [Outgoing(t("stale_button", conv.lang))]  # not the document being asked about
        else:
            progress["docs"] = {**progress.get("docs", {}), guide.documents[step.doc]["id"]: step.have}
            progress["step"] = len(guide.steps) + step.doc + 1
        self._save(conv, guide, progress)
        return self.show(conv, guide, progress)

    @staticmethod
    def _save(conv: Conversation, guide: Guide, progress: dict[str, Any]) -> None:
        conv.guide_progress = {**conv.guide_progress, guide.region: progress}

    def show(self, conv: Conversation, guide: Guide, progress: dict[str, Any]) -> list[Outgoing]:
        lang, i = conv.lang, int(progress["step"])
        back = [Button(t("btn_back", lang), encode(GuideStep("back")))] if i > 0 else []
        if i < len(guide.steps):
            title, text = guide.step_text(i, lang)
            body = t("apply_step", lang, region=guide.region, n=i + 1, total=len(guide.steps), title=title, text=text)
            return [Outgoing(body, [[*back, Button(t("btn_next", lang), encode(GuideStep("next")))]])]
        j = i - len(guide.steps)
        if j < len(guide.documents):
            body = t("apply_doc", lang, n=j + 1, total=len(guide.documents), name=guide.document_name(j, lang))
            return [Outgoing(body, [[Button(t("btn_have", lang), encode(GuideStep("doc", j, True))),
                                     Button(t("btn_not_yet", lang), encode(GuideStep("doc", j, False)))], back])]
        docs = progress.get("docs", {})
        missing = [guide.document_name(k, lang) for k, d in enumerate(guide.documents) if not docs.get(d["id"])]
        progress["finished"] = True
        self._save(conv, guide, progress)
        conv.flow, conv.flow_state = None, {}
        sep = "、" if lang == "zh" else ", "
        source = f"{self.titles.get(guide.doc, guide.doc)} [{', '.join(guide.sources)}]"
        text = t("apply_done", lang, done=len(guide.documents) - len(missing), total=len(guide.documents),
                 missing=t("apply_missing", lang, names=sep.join(missing)) if missing else "", source=source)
        return [Outgoing(text, menu(lang)[1:])]
