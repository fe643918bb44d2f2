"""Button data: one codec, and every forged, stale or out-of-range press gets a clear reply, never an error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.channels.inprocess import InProcessChat
from bot.core.buttons import (
    Back,
    Change,
    Consent,
    FieldAnswer,
    GuideStep,
    Lang,
    Menu,
    Pick,
    Staff,
    Vote,
    decode,
    encode,
)
from bot.core.dialogue import Dialogue
from bot.core.store import Conversation
from tests.conftest import unique_user

EXAMPLES = [Menu("check"), Menu("human"), Consent(True), Consent(False), Lang("en"), FieldAnswer("region", 3),
            GuideStep("next"), GuideStep("back"), GuideStep("doc", 2, True), Vote(17, False), Pick("faq-amount"),
            Staff("claim", 5), Staff("resolve", 6), Staff("kb", 7, True), Staff("kb", 7, False), Menu("facts"),
            Back("union_member"), Change("contract_months")]
FORGED = ["f:region:abc", "f:region:-1", "fb:²:1", "fb:99999999999999999999:1", "apply:doc:x", "hd:claim",
          "hd:claim:99999999999999999999", "menu:rm -rf", "lang:fr", "consent:2", "q:", "q:../../etc", "",
          "fb:1:0", "f:Region:1", "x" * 70, "b:", "b:Age", "b:age:1", "chg:", "chg:../x", "menu:facts:1"]


@pytest.mark.parametrize("data", EXAMPLES, ids=str)
def test_every_kind_round_trips(data: object) -> None:
    assert decode(encode(data)) == data  # type: ignore[arg-type]
    assert len(encode(data).encode()) <= 64  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", FORGED)
def test_forged_data_does_not_decode(raw: str) -> None:
    assert decode(raw) is None


@given(st.text(max_size=80))
def test_decoding_never_raises(raw: str) -> None:
    decoded = decode(raw)
    assert decoded is None or decode(encode(decoded)) == decoded


@pytest.fixture(scope="module")
def dialogue(kb_cfg) -> Dialogue:  # type: ignore[no-untyped-def]
    return Dialogue(kb_cfg)


@pytest.mark.parametrize("raw", [*FORGED, "f:region:99", "apply:doc:99:1", "fb:1:1", "q:faq-does-not-exist",
                                 "hd:claim:1", "b:age", "chg:no_such_field"])
def test_a_forged_press_gets_a_sensible_reply(dialogue: Dialogue, raw: str) -> None:
    w = InProcessChat(dialogue, unique_user("forge"))
    w.say("/check")  # a flow is asking for the region: the most tempting moment to forge
    replies = w.press_data(raw)
    assert replies and all(r.text for r in replies)
    with dialogue.store.sessions() as s:
        conv = s.query(Conversation).filter_by(channel="test", user_id=w.user_id).one()
        assert conv.region is None  # no forged press set a place


def test_a_field_index_out_of_range_is_stale(dialogue: Dialogue) -> None:
    w = InProcessChat(dialogue, unique_user("range"))
    w.say("/check")
    assert "过期" in w.press_data("f:region:99")[0].text
    assert "过期" in w.press_data("f:region:-1")[0].text
