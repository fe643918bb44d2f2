"""What a typed message means while the check asks a question: the answer, a correction of an earlier
answer, a step back, a question of its own (a digression), or none of these.

Where the line is, in this order:
1. the whole message is "上一步"/"back" (`intents.yaml` `back`): a step back;
2. the whole message is a value for the question ("广东", "46岁", "是的", "2024-07"), punctuation aside —
   also when it reads as a question ("广东？"): the answer;
3. a message that does not read as a question:
   a. it names another field (its `names` in `rules/fields.yaml`) with a valid value, and not the field
      being asked — a correction ("合同是两年" while the age is asked, "我今年46了", "I'm 46");
   b. a value for the question is inside it ("我在广州工作", "是的，我入会了", "合同签了两年"): the answer;
   c. it names any field with a valid value: a correction;
4. a message that reads as a question (ends in ?/？, contains an `intents.yaml` `question` word, or starts
   with a `question_en` word): a digression, answered as outside the flow — a place or a number inside
   a question is never taken as the answer;
5. anything else: unclear (the caller gives the field's help and asks again).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bot import values
from bot.eligibility import Field, ProfileError, Rules

FILLERS = ("我说错了", "说错了", "搞错了", "刚才", "其实", "应该", "已经", "我", "了", "的", "也", "都", "呢", "啊", "吧",
           "my", "is", "was", "actually", "sorry")


@dataclass
class Reading:
    ANSWER: ClassVar[str] = "answer"
    CORRECT: ClassVar[str] = "correct"
    BACK: ClassVar[str] = "back"
    QUESTION: ClassVar[str] = "question"
    UNCLEAR: ClassVar[str] = "unclear"

    kind: str  # answer | correct | back | question | unclear
    value: Any = None  # the answer's value
    corrections: dict[str, Any] = field(default_factory=dict)  # field → its new, valid value


class Reader:
    def __init__(self, rules: Rules, intents: dict[str, list[str]]) -> None:
        self.rules = rules
        self.question_words = [w.lower() for w in intents.get("question", [])]
        self.question_starts = {w.lower() for w in intents.get("question_en", [])}
        self.back_words = {w.lower() for w in intents.get("back", [])}

    def is_question(self, text: str) -> bool:
        """Does the message read as a question (data: `intents.yaml` `question`, `question_en`)?"""
        plain = unicodedata.normalize("NFKC", text).strip().lower()
        if plain.endswith("?") or any(w in plain for w in self.question_words):
            return True
        first = re.match(r"[a-z']+", plain)
        return bool(first and first.group(0) in self.question_starts)

    def is_back(self, text: str) -> bool:
        return values.clean(text) in self.back_words

    def read(self, text: str, asking: str, region: str | None, corrections: bool = True) -> Reading:
        """What `text` is, while the field `asking` is asked (see the module docstring for the order)."""
        if self.is_back(text):
            return Reading(Reading.BACK)
        f = self.rules.field_for(asking, region)
        value = self._value(f, text, loose=False)
        if value is not None:
            return Reading(Reading.ANSWER, value)
        if self.is_question(text):
            return Reading(Reading.QUESTION)
        found = self.corrections(text) if corrections else {}
        others = {k: v for k, v in found.items() if k != asking}
        if others and not self._names(f, text):
            return Reading(Reading.CORRECT, corrections=others)
        value = found.get(asking, self._value(f, text, loose=True))
        if value is not None:
            return Reading(Reading.ANSWER, value)
        if others:
            return Reading(Reading.CORRECT, corrections=others)
        return Reading(Reading.UNCLEAR)

    def corrections(self, text: str, known: dict[str, Any] | None = None) -> dict[str, Any]:
        """Fields the message names with a valid new value ("合同是两年" → contract_months: 24); with
        `known`, only fields already recorded there (a correction after the verdict)."""
        found: dict[str, Any] = {}
        for name, f in self.rules.fields.items():
            if known is not None and name not in known and not (name == "region" and "region" in known):
                continue
            mention = self._names(f, text)
            if not mention:
                continue
            value = self._named_value(f, text, mention)
            if value is not None:
                found[name] = value
        return found

    def _names(self, f: Field, text: str) -> str | None:
        lowered = unicodedata.normalize("NFKC", text).lower()
        return next((n for n in sorted(f.names, key=len, reverse=True) if n.lower() in lowered), None)

    def _named_value(self, f: Field, text: str, mention: str) -> Any:
        if f.type == "bool":  # "我不是工会会员": what is left once the name and fillers are gone
            rest = unicodedata.normalize("NFKC", text).lower().replace(mention.lower(), " ")
            for filler in FILLERS:
                rest = re.sub(rf"\b{filler}\b" if filler.isascii() else re.escape(filler), " ", rest)
            rest = values.clean(rest)
            return True if not rest else values.yes_no(rest)
        return self._value(f, text, loose=True)

    def _value(self, f: Field, text: str, loose: bool) -> Any:
        """A valid value for `f` in `text`, or None (out of range, or none there)."""
        if f.type == "region":
            g = self.rules.gazetteer
            return g.resolve(text) if loose else g.canonical(values.clean(text))
        value = f.read(text, loose)
        if value is None and f.type == "int" and not loose:
            value = _integer(text)  # "-1": a number, out of range — the range is said, not "type a number"
            return value
        if value is None:
            return None
        try:
            f.parse(value)
        except ProfileError:
            return None if loose else value  # typed alone, an out-of-range value still gets its range said
        return value


def _integer(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None
