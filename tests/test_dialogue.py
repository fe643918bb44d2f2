"""The dialogue core through the in-process channel, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from bot.channels.inprocess import InProcessChat
from bot.core.dialogue import Dialogue
from bot.core.store import Conversation, Feedback, TranscriptLine
from tests.conftest import unique_user


def chat(cfg, user: str | None = None) -> InProcessChat:  # type: ignore[no-untyped-def]
    return InProcessChat(Dialogue(cfg), user or unique_user())


def test_a_question_gets_a_sourced_answer_and_feedback_is_stored(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(db_cfg)
    w.say("广东能补多少钱")
    assert "1,000" in w.text and "来源：" in w.text
    w.press("👎")
    assert "评价已记下" in w.text and any("人工" in b.label for b in w.buttons)
    with w.dialogue.store.sessions() as s:
        fb = s.scalars(select(Feedback).order_by(Feedback.id.desc())).first()
        assert fb.vote == -1 and fb.question == "广东能补多少钱" and "1,000" in fb.answer
        assert fb.region == "广东"
        conv = s.scalars(select(Conversation).filter_by(user_id=w.user_id)).one()
        assert conv.dislikes_in_a_row == 1


def test_eligibility_check_by_buttons_asks_only_what_the_rules_need(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(db_cfg)
    w.say("/start")
    w.press("同意")
    w.say("/check")
    assert "哪个省" in w.text
    w.press("广东")
    asked = []
    for answer in ("是", "是", "24", "是", "是", "否"):
        asked.append(w.last[-1].text.splitlines()[0])
        if answer.isdigit():
            w.say(answer)
        else:
            w.press(answer)
    # every condition met, but 广东's diploma window is not in the sources: "can't tell", never a plain yes
    assert "暂时无法确定" in w.text and "规定的时间段" in w.text and "符合申请条件" not in w.text
    assert "GD1" in w.text and "1,000" in w.text and "抽签" in w.text
    assert len(asked) == 6  # 广东's six conditions, nothing else (no age, no social insurance …)
    assert not any("年龄" in q or "社保" in q for q in asked)


def test_a_failed_condition_is_named(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(db_cfg)
    w.say("/region")
    w.say("杭州")
    assert "杭州" in w.text
    w.say("我能不能申请")
    answers = iter(["12", "10", "50"])
    while "结果" not in w.text:
        nav = {"◀ 上一步", "📋 我的回答"}  # every question can go back; number questions have no answer buttons
        assert all(b.label in nav for b in w.buttons) or "请" in w.text, w.text
        w.say(next(answers))
    assert "不符合" in w.text and "45" in w.text and "ZJ5" in w.text


def test_an_uncovered_place_is_not_judged(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(db_cfg)
    w.say("/check")
    w.say("北京")
    assert "没有北京的申请条件" in w.text and any("转人工" in b.label for b in w.buttons)


def test_bad_answers_are_explained_and_re_asked(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(db_cfg)
    w.say("/check")
    w.say("火星")
    assert "没认出" in w.text
    w.press("广东")
    w.press("是")
    w.press("是")
    w.say("不知道")
    assert "「两年」" in w.text and "劳动合同" in w.text  # what can be written (一年半 is read), then the question
    w.say("99999")
    assert "0 到 600" in w.text
    w.say("/cancel")
    assert "已退出" in w.text


def test_a_restart_mid_flow_loses_nothing(db_cfg) -> None:  # type: ignore[no-untyped-def]
    user = unique_user()
    first = chat(db_cfg, user)
    first.say("/start")
    first.press("同意")
    first.say("/check")
    first.press("陕西")
    first.press("是")  # union member
    del first  # the bot process dies here
    second = chat(db_cfg, user)  # a new process, same database
    second.say("36")  # answers the question the first process asked
    rules = second.dialogue.rules
    assert rules.fields["public_institution_staff"].ask in second.text
    second.press("否")
    assert rules.fields["diploma_on"].ask in second.text
    second.say("2024-06-30")
    assert "结果" in second.text and "符合申请条件" in second.text and "SX1" in second.text


def test_application_guide_with_checklist_resumes(db_cfg) -> None:  # type: ignore[no-untyped-def]
    user = unique_user()
    w = chat(db_cfg, user)
    w.say("/apply")
    w.press("浙江")
    assert "1/" in w.text
    w.press("下一步")
    assert "2/" in w.text
    again = chat(db_cfg, user)  # restart
    again.say("/apply")
    assert "接着你上次的进度" in again.text and "2/" in again.text
    steps = 0
    while "材料清单" not in again.text:
        again.press("下一步")
        steps += 1
        assert steps < 20
    again.press("已准备")
    while "材料已准备" not in again.text:
        again.press("还没有")
    assert "材料已准备 1/6" in again.text and "还缺" in again.text


def test_reset_really_deletes(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(db_cfg)
    w.say("/start")
    w.press("同意")
    w.say("广州能补多少")
    w.press("👍")
    w.say("/reset")
    assert "已经删除" in w.text
    with w.dialogue.store.sessions() as s:
        assert s.scalars(select(Conversation).filter_by(user_id=w.user_id)).first() is None
        assert s.scalar(select(func.count()).select_from(Feedback).join(
            Conversation, Conversation.id == Feedback.conversation_id, isouter=True)
            .where(Conversation.user_id == w.user_id)) == 0


def test_media_long_pastes_and_language(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(db_cfg)
    w.send_media("sticker")
    assert "贴纸" in w.text
    w.say("补" * 10_000)
    assert "10000 个字" in w.text
    w.say("How much does Guangdong pay?")
    assert "yuan" in w.text and "Helpful" in " ".join(b.label for b in w.buttons)
    w.say("/check")
    assert "trade union member" in w.text  # flows follow the worker's language; 广东 was remembered


def test_floods_get_a_polite_reply_and_are_still_recorded(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(db_cfg)
    w.dialogue.limiter.max = 8  # the shipped default: 8 messages per 10 s
    w.dialogue.limiter.clock = lambda: 0.0  # all twelve inside one window, however slow the machine
    replies = [w.say(f"第{i}条")[0].text for i in range(12)]
    assert sum("太快" in r for r in replies) >= 3
    assert len(w.dialogue.store.transcript("test", w.user_id)) == 24  # 12 in, 12 out: nothing lost


def test_id_cards_and_phone_numbers_are_masked_in_the_transcript(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(db_cfg)
    w.say("我的身份证 440106199001011234 电话 13812345678 能申请吗")
    stored = [line.text for line in w.dialogue.store.transcript("test", w.user_id)]
    assert "440106199001011234" not in stored[0] and "13812345678" not in stored[0]
    assert "440106********1234" in stored[0] and "138****5678" in stored[0]


def test_two_processes_on_one_conversation_do_not_corrupt_it(db_cfg) -> None:  # type: ignore[no-untyped-def]
    user = unique_user()
    bots = [Dialogue(db_cfg), Dialogue(db_cfg)]
    errors: list[BaseException] = []

    def worker(bot: Dialogue, n: int) -> None:
        try:
            for i in range(10):
                bot.handle(_incoming(user, "/region"))
                bot.handle(_incoming(user, "广州" if (i + n) % 2 else "厦门"))
        except BaseException as exc:  # noqa: BLE001 — collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(b, n)) for n, b in enumerate(bots)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    with bots[0].store.sessions() as s:
        conv = s.scalars(select(Conversation).filter_by(user_id=user)).one()
        lines = s.scalar(select(func.count()).select_from(TranscriptLine)
                         .where(TranscriptLine.conversation_id == conv.id))
    assert lines == 2 * 10 * 2 * 2  # every message and reply of both processes is there
    assert conv.region in ("广州", "厦门") and conv.version > 1


def _incoming(user: str, text: str):  # type: ignore[no-untyped-def]
    from bot.core.messages import Incoming

    return Incoming("test", user, text)


def test_a_close_call_offers_questions_to_pick_instead_of_guessing(db_cfg) -> None:  # type: ignore[no-untyped-def]
    w = chat(db_cfg)
    w.say("广东那个钱")  # ambiguous: amount, totals, payment … (「广东补多少」 is answered directly now)
    assert "你是不是想问" in w.text and "转人工" in w.text
    assert not any(line.startswith("【") for line in w.text.splitlines())  # no answer was guessed
    w.press("广东求学圆梦补多少钱")
    assert "1,000" in w.text and "来源：" in w.text
    with w.dialogue.store.sessions() as s:
        last = s.scalars(select(TranscriptLine).order_by(TranscriptLine.id.desc())).first()
        assert last.meta["sources"] == ["faq-amount-guangdong"]
