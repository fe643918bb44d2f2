"""Issue 10: "你在哪个省/市？" — asked when a question with no place is one a place's own rules
answer; the answer is remembered for the conversation; "其他" answers from national text; a new
question drops it; forged or stale presses are refused. Through the in-process channel."""

from __future__ import annotations

from sqlalchemy import select

from bot.answering import Answerer
from bot.channels.inprocess import InProcessChat
from bot.core.buttons import OTHER_PLACE, Place, decode, encode
from bot.core.dialogue import Dialogue
from bot.core.store import Conversation, TranscriptLine
from bot.place_question import places_to_offer
from tests.conftest import unique_user

REGIONAL = "杭洲 社保断过一个月 还能申请吗"  # 杭洲: a typo, so no place is recognised; 杭州's rules answer it


def chat(cfg) -> InProcessChat:  # type: ignore[no-untyped-def]
    return InProcessChat(Dialogue(cfg), unique_user("place"))


def conversation(w: InProcessChat) -> Conversation:
    with w.dialogue.store.sessions() as s:
        return s.scalars(select(Conversation).filter_by(user_id=w.user_id)).one()


def test_place_is_asked_remembered_and_the_question_answered_there(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(db_cfg)
    w.say(REGIONAL)
    assert "你在哪个省/市" in w.text and "来源" not in w.text, w.text
    labels = [b.label for b in w.buttons]
    assert labels[0] == "杭州" and labels[-1] == "其他", labels
    assert conversation(w).flow == "place"
    w.press("杭州")
    assert "来源" in w.text and "杭州" in w.text, w.text
    assert all(r.meta.get("action") == "answer" for r in w.last), [r.meta for r in w.last]
    conv = conversation(w)
    assert conv.region == "杭州" and conv.flow is None and conv.flow_state == {}
    w.say("还是这个问题：社保断过一个月还能申请吗")  # the place is remembered: no second question
    assert "你在哪个省/市" not in w.text
    with w.dialogue.store.sessions() as s:  # the place question is in the transcript, with what it waited on
        asked = [line.meta for line in s.scalars(select(TranscriptLine).filter_by(conversation_id=conv.id))
                 if line.meta.get("action") == "ask_place"]
    assert asked and asked[0]["asked"] == REGIONAL and asked[0]["offered"][0] == "杭州"


def test_a_typed_place_answers_and_a_new_question_drops_the_place_question(kb_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(kb_cfg)
    w.say(REGIONAL)
    w.say("我在杭州")
    assert "来源" in w.text and conversation(w).region == "杭州", w.text
    v = chat(kb_cfg)
    v.say(REGIONAL)
    v.say("广东能补多少钱")  # not a place: a new question, answered as such
    assert "1,000" in v.text and conversation(v).flow is None, v.text
    v.say("杭州")  # nothing waits any more: a plain question about 杭州, not an answer to the old one
    assert "你在哪个省/市" not in v.text


def test_other_answers_from_national_text_only_and_remembers_nothing(kb_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(kb_cfg)
    w.say(REGIONAL)
    w.press("其他")
    assert w.text.startswith("好的，下面只按全国通用的规定回答"), w.text
    assert "你在哪个省/市" not in w.text
    assert conversation(w).region is None
    sources = [s for r in w.last for s in r.meta.get("sources", [])]
    assert all(s.startswith("faq-") or s.startswith("national") for s in sources), sources


def test_forged_and_stale_place_presses_are_refused(kb_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(kb_cfg)
    w.press_data(encode(Place("杭州")))  # nothing is waiting for a place
    assert "过期" in w.text and conversation(w).region is None, w.text
    w.say(REGIONAL)
    w.press_data(encode(Place("火星")))  # not a place we know
    assert "过期" in w.text and conversation(w).flow == "place"
    for bad in ("place:", "place:<b>", "place:" + "广" * 17, "place:杭州:x", "place:1"):
        assert decode(bad) is None, bad
    assert decode(encode(Place(OTHER_PLACE))) == Place(OTHER_PLACE)


def test_a_known_place_or_nonsense_is_never_asked_for_a_place(kb_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(kb_cfg)
    w.say("/region")
    w.say("杭州")
    w.say("社保断过一个月 还能申请吗")  # the conversation's place is known: answered there, never asked
    assert "你在哪个省/市" not in w.text
    v = chat(kb_cfg)
    v.say("今天天气怎么样")
    assert "你在哪个省/市" not in v.text and "没有可靠的答案" in v.text


def test_places_offered_only_when_nobody_said_where(answerer: Answerer) -> None:
    r = answerer.retrieve(REGIONAL)
    assert places_to_offer(answerer, r)[:1] == ["杭州"]
    assert places_to_offer(answerer, answerer.retrieve(REGIONAL, "杭州")) == []
    assert places_to_offer(answerer, answerer.retrieve("北京读大专补多少钱")) == []  # uncovered: refused
    assert places_to_offer(answerer, answerer.retrieve("")) == []
