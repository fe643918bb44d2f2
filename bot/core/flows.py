"""The two guided flows: the eligibility check (ask only what the place's rules need) and the
application guide (one step at a time, then the document checklist), both resumable.

State lives on the Conversation row (facts, flow, flow_state, guide_progress); nothing here
keeps anything in memory between messages.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from bot.core.buttons import FieldAnswer, GuideStep, Menu, encode
from bot.core.messages import Button, Outgoing
from bot.core.store import Conversation
from bot.eligibility import NO, YES, Field, ProfileError, Rules, Verdict
from bot.guides import Guide
from bot.i18n import t

CHECK, APPLY = "check", "apply"


def rows(buttons: list[Button], per_row: int = 3) -> list[list[Button]]:
    return [buttons[i:i + per_row] for i in range(0, len(buttons), per_row)]


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
        if verdict.missing and verdict.eligible != NO:  # one failed condition settles it: stop asking
            name = verdict.missing[0]
            conv.flow_state = {"asking": name}
            return [self.question(self.rules.field_for(name, verdict.region), conv.lang)]
        conv.flow, conv.flow_state = None, {}
        reply = self.render(verdict, conv.lang)
        if conv.consent is not True:  # no consent: forget the answers once used
            conv.facts = {}
        return [reply]

    def question(self, f: Field, lang: str) -> Outgoing:
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
        return Outgoing(f"{text}\n{hint}".strip(), buttons)

    def answer(self, conv: Conversation, value: Any) -> list[Outgoing]:
        """Record the answer to the fact being asked (button value or typed text) and go on."""
        name = conv.flow_state.get("asking")
        if name not in self.rules.fields:
            return self.next(conv)
        f = self.rules.fields[name]
        try:
            parsed = self._parse(f, value)
        except ProfileError as exc:
            return [Outgoing(t("invalid_answer", conv.lang, error=self._explain(f, exc, conv.lang)),
                             self.question(f, conv.lang).buttons)]
        if name == "region":
            conv.region = parsed if conv.consent is not False else conv.region
        conv.facts = {**conv.facts, name: parsed.isoformat() if isinstance(parsed, date) else parsed}
        return self.next(conv)

    def _parse(self, f: Field, value: Any) -> Any:
        if f.type == "region":
            place = self.rules.gazetteer.resolve(str(value).strip())
            if place is None:
                raise ProfileError(f"unknown place {value!r}", "place")
            return place
        return f.parse(value)

    @staticmethod
    def _explain(f: Field, exc: ProfileError, lang: str) -> str:
        if exc.code == "place":
            return t("region_unknown", lang, text="")
        if exc.code == "range":
            return t("invalid_range", lang, min=f.min, max=f.max)
        return t({"bool": "invalid_bool", "int": "invalid_int", "date": "invalid_date"}.get(f.type, "invalid_enum"),
                 lang)

    def render(self, v: Verdict, lang: str) -> Outgoing:
        en = lang == "en"
        if v.rules is None:
            return Outgoing(t("verdict_no_rules", lang, region=v.region), menu(lang)[1:])
        lines = []
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
                                            Button(t("btn_human", lang), encode(Menu("human")))]])


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
