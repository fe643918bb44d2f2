"""The topic signal (issue 10): FAQ entries name their topics, the list is data and validated, and the
learned decision weighs whether the question reads like the top entry's topic (bot/topics.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from bot.answering import Answerer
from bot.decision import FEATURES
from bot.topics import rows_by_topic, topic_margin
from ingest.loaders import load_paths
from ingest.validate import KnowledgeDirs, known_topics, topic_problems, validate_paths
from tests.conftest import PROJECT

DICTIONARY = PROJECT / "knowledge" / "dictionary"


def test_margin_is_own_topics_best_phrasing_minus_any_other_topics() -> None:
    rows = rows_by_topic([["amount"], ["amount"], ["documents"], ["window", "amount"], []])
    assert {t: r.tolist() for t, r in rows.items()} == {"amount": [0, 1, 3], "documents": [2], "window": [3]}
    sims = np.array([0.70, 0.80, 0.90, 0.60, 0.99])  # row 4 belongs to an entry without topics: ignored
    amount = {"kind": "faq", "topics": ["amount"]}
    assert topic_margin(sims, rows, amount) == 0.80 - 0.90
    assert topic_margin(sims, rows, {"kind": "faq", "topics": ["documents"]}) == 0.90 - 0.80
    assert topic_margin(sims, rows, {"kind": "faq", "topics": ["documents", "window"]}) == 0.90 - 0.80
    assert topic_margin(sims, rows, {"kind": "policy", "topics": ["amount"]}) == 0.0  # a passage
    assert topic_margin(sims, rows, {"kind": "faq"}) == 0.0  # an entry without topics
    assert topic_margin(sims, rows_by_topic([["amount"]]), amount) == 0.0  # nothing to compare with


def test_every_shipped_faq_entry_names_listed_topics() -> None:
    docs, errors = load_paths([PROJECT / "knowledge" / "faq"])
    assert not errors and docs
    known = known_topics(DICTIONARY)
    assert known and {"amount", "documents", "window", "conditions"} <= known
    assert [d.doc_id for d in docs if not d.meta.get("topics")] == []
    assert topic_problems(docs, known) == []


def test_unknown_topic_or_bad_topics_file_is_named(tmp_path: Path) -> None:
    dictionary, faq = tmp_path / "dictionary", tmp_path / "faq"
    dictionary.mkdir()
    faq.mkdir()
    (dictionary / "topics.yaml").write_text("amount: 补多少钱\ndocuments: 材料\n", encoding="utf-8")
    entry = {"id": "faq-x", "sources": ["S1"], "question": "补多少？", "answer": "一千元。", "topics": ["amout"]}
    (faq / "x.yaml").write_text(yaml.safe_dump([entry], allow_unicode=True), encoding="utf-8")
    dirs = KnowledgeDirs(dictionary=dictionary)
    _, problems = validate_paths([faq, dictionary], dirs)
    assert len(problems) == 1 and "faq-x: topic 'amout'" in problems[0].message, problems
    entry["topics"] = ["amount"]
    (faq / "x.yaml").write_text(yaml.safe_dump([entry], allow_unicode=True), encoding="utf-8")
    assert validate_paths([faq, dictionary], dirs)[1] == []
    (dictionary / "topics.yaml").write_text("amount: [not, text]\n", encoding="utf-8")
    _, problems = validate_paths([faq, dictionary], dirs)
    assert [Path(p.path).name for p in problems] == ["topics.yaml"] and "amount" in problems[0].message


def test_the_shipped_decision_weighs_the_topic_of_the_top_entry(answerer: Answerer) -> None:
    assert "topic_margin" in FEATURES
    model = answerer.decision
    assert model is not None and model.features == list(FEATURES), "retrain: qiuxue eval --calibrate"
    assert model.coef[FEATURES.index("topic_margin")] > 0  # reading like the top entry's topic raises P(right)
    snap = answerer.knowledge.current()
    amount_q, documents_q = "{}读个大专补贴能给几块钱", "{}申请补贴得交哪些证明材料"

    def margin(doc_id: str, question: str) -> float:
        meta = next(c for c in snap.chunks if c.doc_id == doc_id).meta
        return topic_margin(snap.faq_vectors @ snap.query_vector(question), snap.faq_topic_rows, meta)

    # a place with both entries: the topic the question asks is ahead, the sibling's behind
    assert margin("faq-amount-guangdong", amount_q.format("广东")) > 0 > margin("faq-amount-guangdong",
                                                                               documents_q.format("广东"))
    assert margin("faq-documents-shandong", documents_q.format("山东")) > 0 > margin("faq-documents-shandong",
                                                                                  amount_q.format("山东"))
    # a place with one entry: its phrasings pull every question of that place, but less for another topic
    assert margin("faq-amount-changzhou", amount_q.format("常州")) > margin("faq-amount-changzhou",
                                                                          documents_q.format("常州"))
