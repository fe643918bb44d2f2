"""Quality floor on the evaluation set (default offline configuration): a regression fails CI.

Latency is measured by `qiuxue eval` (README), not asserted here.
"""

from __future__ import annotations

from bot.answering import Answerer
from bot.evaluation import DEFAULT_SET, load_items, run, score
from tests.conftest import PROJECT


def test_quality_floor_on_the_evaluation_set(answerer: Answerer) -> None:
    items = load_items(PROJECT / DEFAULT_SET)
    assert len(items) >= 120 and sum(i.expect is None for i in items) >= 25
    metrics = score(run(answerer, items, "hybrid", warmup=0), answerer.thresholds)
    assert metrics["hit@3"] >= 0.95, metrics
    assert metrics["wrong_rate"] <= 0.03, metrics
    assert metrics["no_answer_recall"] >= 0.90, metrics
    assert metrics["answered"] >= 0.60, metrics  # refusing everything would pass the others
    assert metrics["answered"] + metrics["suggested"] >= 0.90, metrics  # a close call offers the right entry


def test_every_expected_id_exists(answerer: Answerer) -> None:
    snap = answerer.knowledge.current()
    known = {c.doc_id for c in snap.chunks}
    for item in load_items(PROJECT / DEFAULT_SET):
        for doc_id in item.expect or []:
            assert doc_id in known, (item.question, doc_id)
