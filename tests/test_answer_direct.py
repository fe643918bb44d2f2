"""Issue 10: the learned decision, FAQ answers that name their question, related questions,
a province's rule for a city without its own, and confirmed picks turned into labelled questions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot.answering import ANSWER, NO_ANSWER, Answerer
from bot.decision import FEATURES, DecisionModel, choose_threshold, fit
from common.settings import Config


def test_city_without_rules_gets_its_provinces_rule_not_the_national_note(answerer: Answerer) -> None:
    for question, region in (("深圳职工读大专补多少钱", None), ("报名要准备什么", "深圳")):
        a = answerer.ask(question, region)
        assert a.action == NO_ANSWER and a.not_covered and a.region == "深圳"
        assert "广东" in a.answer and a.sources, a.answer
        assert all(s.region == "广东" for s in a.sources), a.sources  # never 全国's "not covered" note
        assert "not-covered" not in [s.id for s in a.sources]


def test_faq_answer_names_its_question_and_offers_related_ones(answerer: Answerer) -> None:
    a = answerer.ask("常州读大专能补多少")
    assert a.action == ANSWER and a.sources[0].id == "faq-amount-changzhou", a.answer
    assert a.answer.startswith("问：常州求学圆梦补多少钱？")
    assert 1 <= len(a.related) <= 2 and "faq-amount-changzhou" not in [d for d, _ in a.related]
    assert a.as_json()["related"] == [{"id": d, "question": q} for d, q in a.related]
    en = answerer.ask("How much does Changzhou pay per person?")
    assert en.action == ANSWER and en.answer.startswith("Q: "), en.answer


def test_threshold_keeps_wrong_answers_and_refusals_within_limits() -> None:
    # probabilities, top-1 right?, answerable?: the 0.7 row is a wrong answer, the 0.6 one must be refused
    p = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5, -1.0]
    right = [True, True, True, False, False, True, False]
    answerable = [True, True, True, True, False, True, True]
    assert choose_threshold(p, right, answerable, max_wrong=0.0, min_recall=1.0) == 0.8
    assert choose_threshold(p, right, answerable, max_wrong=0.2, min_recall=1.0) == 0.7
    assert choose_threshold(p, right, answerable, max_wrong=0.2, min_recall=0.0) == 0.5


def test_decision_model_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, len(FEATURES)))
    y = (x[:, 0] > 0).astype(int)
    model = fit(x, y, threshold=0.6)
    path = tmp_path / "m.json"
    model.save(path)
    loaded = DecisionModel.load(path)
    assert loaded is not None and loaded.threshold == 0.6
    assert np.allclose(loaded.probabilities(x), model.probabilities(x))
    assert ((loaded.probabilities(x) >= 0.5) == y.astype(bool)).mean() > 0.9
    path.write_text(path.read_text().replace('"top_faq"', '"something_else"'))
    assert DecisionModel.load(path) is None  # trained on other features: not used


def test_shipped_decision_model_is_loaded(answerer: Answerer) -> None:
    assert answerer.decision is not None and 0.0 < answerer.decision.threshold <= 1.0
    assert answerer.decision.report.get("cv_mean"), "the model ships with its CV report"


def test_confirmed_picks_and_thumbs_up_become_labelled_questions(cfg: Config) -> None:
    from bot.core.store import Conversation, Feedback, TranscriptLine
    from bot.feedback_questions import confirmed_questions
    from common.db import open_database

    sessions = open_database(cfg)
    with sessions() as s, s.begin():
        conv = Conversation(channel="test", user_id="u1")
        s.add(conv)
        s.flush()
        out = [TranscriptLine(conversation_id=conv.id, direction="out", text="你是不是想问…",
                              meta={"action": "no_answer", "asked": "常州补几个钱", "region": None,
                                    "offered": ["faq-amount-changzhou", "faq-amount"], "sources": []}),
               TranscriptLine(conversation_id=conv.id, direction="out", text="…",
                              meta={"action": "answer", "picked": "faq-amount-changzhou",
                                    "sources": ["faq-amount-changzhou"]}),
               TranscriptLine(conversation_id=conv.id, direction="out", text="…",
                              meta={"action": "answer", "asked": "厦门补几次", "sources": ["faq-payment-xiamen"],
                                    "offered": []}),
               TranscriptLine(conversation_id=conv.id, direction="out", text="…",
                              meta={"action": "answer", "picked": "faq-not-offered", "sources": []})]
        s.add_all(out)
        s.flush()
        s.add(Feedback(conversation_id=conv.id, answer_line_id=out[2].id, question="厦门补几次",
                       answer="…", region="厦门", vote=1))
        s.add(Feedback(conversation_id=conv.id, answer_line_id=out[0].id, question="x", answer="…", vote=-1))
    got = confirmed_questions(sessions)
    assert {(g["q"], g.get("region"), g["expect"][0], g["from"]) for g in got} == {
        ("常州补几个钱", None, "faq-amount-changzhou", "pick"),
        ("厦门补几次", "厦门", "faq-payment-xiamen", "thumbs up")}
    assert all(g["review"] is True for g in got)
