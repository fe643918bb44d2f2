"""The dialogue side of "你在哪个省/市？": ask for the place, remember the question, take the reply.

`bot.place_question` decides *whether* a refused question is one a place's own rules would answer.
This module asks it with buttons — the places retrieval ranked first, then the other places with
rules, and "其他" — and keeps the question on the conversation (`flow = "place"`) until the worker
answers. A typed reply that is just a place ("广州", "我在杭州") answers it; anything longer is a new
question and the place question is dropped. "其他" answers from the national text only.
"""

from __future__ import annotations

import re

from bot.core.buttons import OTHER_PLACE, Place, encode
from bot.core.flows import rows
from bot.core.messages import Button, Outgoing
from bot.core.store import Conversation
from bot.i18n import t
from bot.regions import NATIONAL, Gazetteer

PLACE_FLOW = "place"  # conv.flow while the bot waits for the worker's place
MAX_BUTTONS = 8  # places shown as buttons (plus "其他"); any other place can be typed
FILLER = re.compile(r"[\W\d_]+|我在|在|我是|是|的|那边|这边|这里|呢|啊|吧|省|市|i'?m|i am|in|at|from", re.IGNORECASE)


class AskPlace:
    def __init__(self, gazetteer: Gazetteer, shortcuts: list[str]) -> None:
        self.gazetteer = gazetteer
        self.shortcuts = shortcuts  # the places with rules (the region field's buttons)

    def ask(self, conv: Conversation, question: str, places: list[str]) -> Outgoing:
        """Ask where the worker is; the question waits on the conversation."""
        conv.flow, conv.flow_state = PLACE_FLOW, {"question": question}
        names = list(dict.fromkeys([*places, *self.shortcuts]))[:MAX_BUTTONS]
        buttons = [Button(n, encode(Place(n))) for n in names] + [Button(t("btn_place_other", conv.lang),
                                                                         encode(Place(OTHER_PLACE)))]
        return Outgoing(t("ask_place", conv.lang), rows(buttons, 4),
                        meta={"action": "ask_place", "asked": question, "offered": places})

    def typed(self, conv: Conversation, text: str) -> tuple[str, str] | None:
        """(the waiting question, the place) if `text` just names a place; None if it is something else
        (a new question): then the waiting question is dropped."""
        question = str(conv.flow_state.get("question") or "")
        conv.flow, conv.flow_state = None, {}
        place = self.gazetteer.resolve(text.strip())
        if place is None or not question or FILLER.sub("", self.gazetteer.without_places(text)):
            return None
        return question, place

    def pressed(self, conv: Conversation, name: str) -> tuple[str, str] | None:
        """(the waiting question, the place — NATIONAL for "其他") for a press; None if nothing waits
        or the place is unknown."""
        question = str(conv.flow_state.get("question") or "") if conv.flow == PLACE_FLOW else ""
        place = NATIONAL if name == OTHER_PLACE else self.gazetteer.canonical(name)
        if not question or place is None:
            return None
        conv.flow, conv.flow_state = None, {}
        return question, place
