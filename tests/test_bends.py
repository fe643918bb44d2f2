"""A conversation that bends (issue 15): natural answers, questions in the middle of a check
(digressions), corrections, ◀ back, /facts — through the in-process channel, on SQLite and PostgreSQL,
with a restart between a digression and the next answer; and the start-up polish."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from bot import values
from bot.channels.inprocess import InProcessChat
from bot.channels.terminal import chat as terminal_chat
from bot.check import load_rules
from bot.core.dialogue import Dialogue
from bot.core.messages import Capabilities
from bot.core.store import Conversation
from bot.core.understand import Reader, Reading
from bot.values import Month
from common.settings import Config
from common.yamlio import read_yaml
from tests.conftest import PROJECT, unique_user

# -- the parsers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("是的", True), ("对", True), ("有", True), ("嗯", True), ("没有", False), ("不是", False), ("yes", True),
    ("yep", True), ("no", False), ("是。", True), ("Yes!", True), ("还没呢", False), ("否", False)])
def test_yes_and_no_as_people_say_them(text: str, expected: bool) -> None:
    assert values.yes_no(text) is expected


@pytest.mark.parametrize(("text", "loose", "expected"), [
    ("是的，我入会了", True, True), ("no, I'm not", True, False), ("是的，我入会了", False, None),
    ("不是很清楚", True, None), ("I'm not sure", True, None), ("是吗", True, None), ("有点难", True, None)])
def test_yes_or_no_inside_a_sentence_only_when_it_leads(text: str, loose: bool, expected: bool | None) -> None:
    assert values.yes_no(text, loose) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("两年", 24), ("一年半", 18), ("18个月", 18), ("2 years", 24), ("1.5年", 18), ("半年", 6), ("三十六个月", 36),
    ("24", 24), ("2年零3个月", 27), ("1 year and 6 months", 18), ("十二", 12), ("abc", None), ("1.3年", None)])
def test_durations_in_months(text: str, expected: int | None) -> None:
    assert values.months(text) == expected


@pytest.mark.parametrize(("text", "loose", "expected"), [
    ("46岁", False, 46), ("四十六岁", False, 46), ("46", False, 46), ("46 years old", False, 46),
    ("我今年46了", True, 46), ("I'm 46", True, 46), ("我今年46了", False, None), ("2024年入学", True, None)])
def test_ages(text: str, loose: bool, expected: int | None) -> None:
    assert values.age(text, loose) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("2024年7月", Month(2024, 7, 1)), ("2024-07", Month(2024, 7, 1)), ("24年7月", Month(2024, 7, 1)),
    ("2024-07-01", date(2024, 7, 1)), ("2024年7月18日", date(2024, 7, 18)), ("2024/7/18", date(2024, 7, 18)),
    ("二零二四年七月", Month(2024, 7, 1)), ("2024年13月", None), ("2024", None), ("明年", None)])
def test_dates(text: str, expected: date | None) -> None:
    got = values.when(text)
    assert got == expected and type(got) is type(expected)  # a month alone stays a Month: the day is unknown


def chinese(n: int) -> str:
    """0–99 in Chinese numerals, as people write them (十二, 二十, 三十六)."""
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else digits[tens]) + "十" + (digits[ones] if ones else "")


@given(st.integers(0, 50), st.integers(0, 11))
def test_any_whole_duration_reads_the_same_in_every_form(years: int, extra: int) -> None:
    total = years * 12 + extra
    assert values.months(f"{total}个月") == total
    if total < 100:  # chinese() writes 0–99
        assert values.months(f"{chinese(total)}个月") == total
    assert values.months(f"{years}年") == years * 12 == values.months(f"{years} years")
    assert values.months(f"{chinese(years)}年") == years * 12
    assert values.months(f"{years}年半") == years * 12 + 6
    if extra:
        assert values.months(f"{years}年{extra}个月") == total


@given(st.integers(2000, 2099), st.integers(1, 12), st.integers(1, 28))
def test_any_date_reads_the_same_in_every_form(year: int, month: int, day: int) -> None:
    first = Month(year, month, 1)
    assert values.when(f"{year}年{month}月") == values.when(f"{year}-{month:02d}") == first
    assert values.when(f"{year % 100:02d}年{month}月") == first
    assert values.when(f"{year}-{month:02d}-{day:02d}") == date(year, month, day) == values.when(
        f"{year}年{month}月{day}日")


@given(st.integers(16, 70))
def test_any_age_reads_in_every_form(years: int) -> None:
    assert values.age(f"{years}岁") == values.age(str(years)) == values.age(f"{chinese(years)}岁") == years
    assert values.age(f"我今年{years}了", loose=True) == values.age(f"I'm {years}", loose=True) == years


@given(st.text(max_size=40), st.booleans())
def test_the_readers_never_raise(text: str, loose: bool) -> None:
    for read in (values.yes_no, values.months, values.age, values.when):
        read(text, loose)


# -- where the line is: answer, correction, back, question, unclear --------------------------------


@pytest.fixture(scope="module")
def reader() -> Reader:
    from bot.eligibility import Rules
    from bot.regions import Gazetteer

    knowledge = PROJECT / "knowledge"
    intents = read_yaml(knowledge / "dictionary" / "intents.yaml")
    return Reader(Rules(knowledge / "rules", Gazetteer.load(knowledge / "dictionary")), intents)


LINE = [  # (the question being asked, what the worker types, what it is, its value or the corrections)
    ("region", "广东", "answer", "广东"),
    ("region", "广东？", "answer", "广东"),  # wholly a place: the answer, question mark or not
    ("region", "我在广州工作", "answer", "广州"),  # a statement naming a place: the answer
    ("region", "广州能补多少钱", "question", None),  # a place inside a question is NOT the answer
    ("region", "How much can I get in Guangdong?", "question", None),
    ("union_member", "是的", "answer", True),
    ("union_member", "嗯", "answer", True),
    ("union_member", "没有", "answer", False),
    ("union_member", "yep", "answer", True),
    ("union_member", "是的，我入会了", "answer", True),
    ("union_member", "no, I'm not", "answer", False),
    ("union_member", "我不是工会会员", "answer", False),  # names the field asked, with a no
    ("union_member", "我辞职了还能领吗", "question", None),
    ("union_member", "是吗？", "question", None),
    ("union_member", "合同是两年", "correct", {"contract_months": 24}),
    ("union_member", "我今年46了", "correct", {"age": 46}),
    ("union_member", "I'm 46", "correct", {"age": 46}),
    ("union_realname", "我说错了，我不是工会会员", "correct", {"union_member": False}),
    ("union_member", "上一步", "back", None),
    ("union_member", "Back", "back", None),
    ("union_member", "不知道", "unclear", None),
    ("contract_months", "两年", "answer", 24),
    ("contract_months", "合同是两年", "answer", 24),
    ("contract_months", "一年半", "answer", 18),
    ("contract_months", "46", "answer", 46),  # a bare number answers the number asked
    ("contract_months", "我今年46了", "correct", {"age": 46}),  # names another field: a correction
    ("contract_months", "合同两年能申请吗", "question", None),  # a number inside a question is not the answer
    ("contract_months", "99999", "answer", 99999),  # typed alone: the answer, and its range is said
    ("age", "我今年46了", "answer", 46),
    ("age", "46岁。", "answer", 46),
    ("age", "46岁能申请吗", "question", None),
    ("age", "我今年200岁了", "unclear", None),
    ("diploma_on", "2024年7月", "answer", Month(2024, 7, 1)),
    ("diploma_on", "毕业证是2024年7月发的", "answer", Month(2024, 7, 1)),
    ("current_education", "专科", "answer", "专科"),
]


@pytest.mark.parametrize(("asking", "text", "kind", "value"), LINE, ids=[f"{a}:{t}" for a, t, _, _ in LINE])
def test_where_the_line_is(reader: Reader, asking: str, text: str, kind: str, value: Any) -> None:
    reading = reader.read(text, asking, "广东")
    assert reading.kind == kind
    if kind == Reading.CORRECT:
        assert reading.corrections == value
    elif kind == Reading.ANSWER:
        assert reading.value == value


def test_a_correction_after_the_verdict_only_changes_what_was_recorded(reader: Reader) -> None:
    assert reader.corrections("合同是两年", known={"contract_months": 6}) == {"contract_months": 24}
    assert reader.corrections("我今年46了", known={"contract_months": 6}) == {}  # age was never asked
    assert not reader.is_question("合同是两年") and reader.is_question("合同要几年？")


# -- through the in-process channel -----------------------------------------------------------------


_dialogues: dict[str, Dialogue] = {}


def worker(cfg: Config, user: str | None = None, consent: bool = False, restart: bool = False) -> InProcessChat:
    """A worker talking to this test module's bot; `restart`: to a new bot process on the same database."""
    key = str(cfg.database.url or "sqlite")
    if restart or key not in _dialogues:
        _dialogues[key] = Dialogue(cfg)
    w = InProcessChat(_dialogues[key], user or unique_user("bend"))
    if consent:
        w.say("/start")
        w.press("同意")
    return w


def labels(w: InProcessChat) -> list[str]:
    return [b.label for b in w.buttons]


def state(w: InProcessChat) -> Conversation:
    with w.dialogue.store.sessions() as s:
        return s.scalars(select(Conversation).filter_by(channel=w.channel, user_id=w.user_id)).one()


def test_a_question_mid_check_is_answered_then_asked_again_and_survives_a_restart(db_cfg) -> None:  # type: ignore[no-untyped-def]
    outside = worker(db_cfg)
    outside.say("广东能补多少钱")  # the same question outside any flow
    w = worker(db_cfg, consent=True)
    w.say("/check")
    w.press("广东")
    assert "工会会员" in w.text
    replies = w.say("广东能补多少钱")
    assert len(replies) == 1  # one reply: the answer with its source, then the question again
    text = replies[0].text
    assert text.startswith(outside.text) and "1,000" in text and "来源" in text  # exactly as outside the flow
    assert "回到刚才的问题" in text and text.index("来源") < text.index("你是工会会员吗")
    assert {"是", "否", "◀ 上一步"} <= set(labels(w)) and any("👍" in label for label in labels(w))
    assert state(w).flow_state["asking"] == "union_member"
    again = worker(db_cfg, w.user_id, restart=True)  # a new process on the same database
    again.press_data(next(b.data for b in w.buttons if b.label == "是"))
    assert "实名认证" in again.text  # the flow went on from where the digression left it
    assert state(again).facts["union_member"] is True


def test_a_place_inside_a_question_is_not_the_answer_to_the_place_question(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = worker(db_cfg, consent=True)
    w.say("/check")
    w.say("广州能补多少钱")
    assert "广州" in w.text and "来源" in w.text and "哪个省" in w.text
    assert state(w).region is None and "region" not in state(w).facts and state(w).flow_state["asking"] == "region"
    w.say("我辞职了还能领吗")  # answered as outside the flow (directly, by the learned decision), and the question
    assert w.text.startswith("问：换工作或离职了，补贴还能领吗？") and "回到刚才的问题" in w.text
    assert "哪个省" in w.text and state(w).flow_state["asking"] == "region"
    w.say("How much does Guangdong pay?")  # asked in English: answered, and asked again, in English
    assert "yuan" in w.text and "Which province or city" in w.text and state(w).region is None
    again = worker(db_cfg, w.user_id, restart=True)  # restart between the digression and the answer
    again.say("I work in Guangzhou")
    assert state(again).region == "广州" and state(again).flow_state["asking"] != "region"
    assert "Which province" not in again.text  # the check went on with 广州's first question


def test_a_suggestion_picked_mid_check_is_answered_and_the_question_asked_again(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = worker(db_cfg)
    w.say("/check")
    w.press("广东")
    w.say("离职了还给补吗")  # a close call (「我辞职了还能领吗」 is answered directly): the choices, then the question
    assert "你是不是想问" in w.text and "工会会员" in w.text
    pick = next(b for b in w.buttons if b.data.startswith("q:"))
    w.press(pick.label)
    assert "来源" in w.text and "你是工会会员吗" in w.text and state(w).flow_state["asking"] == "union_member"


def test_natural_answers_and_help_for_what_cannot_be_read(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = worker(db_cfg)
    w.say("/check")
    w.press("陕西")
    w.say("是的")  # union member
    assert "劳动合同" in w.text
    w.say("不知道")
    assert "两年" in w.text and "劳动合同" in w.text  # what can be written, then the question again
    w.say("一年半")
    assert state(w).facts["contract_months"] == 18
    w.say("没有")  # established public-institution staff: no
    w.say("2024年7月")  # the day does not matter for 陕西's window (2024-01-01 … 2025-07-31)
    assert "符合申请条件" in w.text and "SX1" in w.text


def test_a_correction_rechecks_and_names_the_condition_that_changed_the_verdict(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = worker(db_cfg, consent=True)
    w.say("/check")
    w.press("陕西")
    w.press("是")
    w.say("36")
    w.press("否")
    w.say("2024-06-30")
    assert "符合申请条件" in w.text
    w.say("我说错了，合同是半年")
    assert "已改" in w.text and "6个月" in w.text and "改变了结果" in w.text and "不符合" in w.text
    changed = w.text.split("改变了结果")[1].split("结果")[0]
    assert "✗" in changed and "劳动合同" in changed and "工会会员" not in changed  # only the condition that moved
    w.say("/facts")
    assert "劳动合同期限：6个月" in w.text and "地区：陕西" in w.text
    w.press("改「劳动合同期限」")
    assert "之前的回答：6个月" in w.text
    w.say("两年")
    assert "改变了结果" in w.text and "✓" in w.text.split("改变了结果")[1] and "符合申请条件" in w.text
    w.say("我今年46了")  # 陕西 never asked the age: not a correction, just a message answered as usual
    assert "改变了结果" not in w.text and state(w).facts.get("age") is None


def test_a_correction_mid_check_goes_on_with_the_check(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = worker(db_cfg)
    w.say("/check")
    w.press("杭州")
    w.say("12")  # contract
    assert "多大" in w.text
    w.say("社保交了两年")  # a fact not asked yet: recorded, and the question asked again
    assert "已改" in w.text and "24个月" in w.text and "多大" in w.text
    assert state(w).facts["social_insurance_months"] == 24
    w.say("I'm 50")
    assert "不符合" in w.text and "45" in w.text and "社保" not in w.text.split("满足的条件")[0]
    assert "改变了结果" not in w.text  # no verdict before the change: nothing to compare


def test_back_asks_the_previous_question_again_with_the_answer_given(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = worker(db_cfg)
    w.say("/check")
    w.press("上一步")
    assert "第一个问题" in w.text and "哪个省" in w.text
    w.press("广东")
    w.press("是")
    assert "实名认证" in w.text
    w.press("上一步")
    assert "工会会员" in w.text and "之前的回答：是" in w.text
    w.press("否")
    assert "不符合" in w.text and "工会会员" in w.text
    assert "过期" in w.press_data("b:union_member")[0].text  # a back press from a question no longer asked


def test_facts_without_anything_recorded_and_without_consent(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = worker(db_cfg)
    w.say("/facts")
    assert "还没有记下" in w.text and "我能申请吗" in labels(w)
    w.say("/start")
    w.press("不同意")
    w.say("/check")
    w.press("广东")
    w.press("📋")
    assert "地区：广东" in w.text and "删除" in w.text


def test_a_channel_without_buttons_takes_a_typed_number_as_the_answer(kb_cfg) -> None:  # type: ignore[no-untyped-def]
    w = InProcessChat(Dialogue(kb_cfg, capabilities={"test": Capabilities(buttons=False)}), unique_user("nb"))
    w.say("/check")
    w.say("杭州")
    assert "劳动合同" in w.text and "上一步" in w.text and "\n1. " not in w.text
    w.say("1")  # a one-month contract, not "option 1"
    assert state(w).facts["contract_months"] == 1 and "多大" in w.text
    w.say("上一步")
    assert "劳动合同" in w.text and "1个月" in w.text


def test_the_terminal_prints_the_welcome_once(kb_cfg) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    terminal_chat(Dialogue(kb_cfg), unique_user("tty"), io.StringIO("/start\n1\n/start\n/quit\n"), out)
    text = out.getvalue()
    assert text.count("你好！我是求学圆梦助手") == 1
    assert "同意我们保存" in text and "谢谢" in text and "欢迎回来" in text


def test_choosing_a_language_first_still_leads_to_the_consent_question(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = worker(db_cfg)
    w.say("/start")
    w.press("English")
    assert "reply in English" in w.text and "consent" in w.text and "I agree" in labels(w)
    w.press("I agree")
    assert state(w).consent is True and "Thank you" in w.text


def test_a_month_is_asked_again_as_a_date_only_where_the_day_decides(tmp_path: Path, cfg: Config) -> None:
    from bot.core.flows import EligibilityFlow

    rules = load_rules(cfg)
    flow = EligibilityFlow(rules)
    conv = Conversation(channel="t", user_id="u", facts={"region": "山东"}, flow="check",
                        flow_state={"asking": "enrolled_on"}, lang="zh", consent=True)
    cut_off = next(c for c in rules.by_place["山东"].conditions if c.field == "enrolled_on")
    assert not flow._day_matters(conv, rules.fields["enrolled_on"], Month(2024, 9, 1))  # 山东: from 2024-09-01
    cut_off.value = "2024-09-15"  # were the cut-off mid-month, September alone would not settle it
    replies = flow.answer(conv, "2024年9月")
    assert "具体哪一天" in replies[0].text and "enrolled_on" not in conv.facts
    flow.answer(conv, "2024-09-20")
    assert conv.facts["enrolled_on"] == "2024-09-20"
