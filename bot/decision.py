"""The learned answer decision: how likely is retrieval's top-1 to be a right answer?

A small logistic regression over signals retrieval already computes (FAQ phrasing similarity,
dense and BM25 scores, fused margins, coverage, place match, agreement of the top candidates) and
one lexical second opinion: how many of the question's character pairs the top FAQ entry's own
wordings share (an embedding finds 「广东补多少」 and 「广东要交什么材料」 equally close; the
characters do not) — and one topic signal: whether the question reads more like the phrasings of
the top entry's topic, pooled over every place, than like those of any other topic (bot/topics.py).
`qiuxue eval --calibrate` trains it on tests/eval/questions.yaml with cross-validation, picks the
probability threshold for the wrong-answer target and writes it as JSON (coefficients, feature
scaling, threshold, CV report): no pickle, and scikit-learn is needed only to train it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.regions import NATIONAL
from bot.topics import topic_margin

if TYPE_CHECKING:
    from bot.answering import Retrieval

FEATURES = (
    "top_faq", "top_dense", "top_bm25", "coverage", "log_margin", "log_lead", "is_faq", "faq_gap",
    "dense_best", "bm25_best", "place_known", "own_place", "national", "agree", "log_tokens", "english",
    "wording_overlap", "topic_margin",
)


def bigrams(text: str) -> set[str]:
    """Lower-cased character pairs of `text` without spaces (the text itself if shorter)."""
    s = "".join(text.lower().split())
    return {s[i:i + 2] for i in range(len(s) - 1)} or {s}


def wording_overlap(question: str, meta: dict[str, Any]) -> float:
    """Best Jaccard overlap of the question's character pairs with a FAQ entry's question or phrasings."""
    mine = bigrams(question)
    wordings = [meta.get("question"), meta.get("question_en"), *meta.get("phrasings", [])]
    return max((len(mine & b) / len(mine | b) for w in wordings if w for b in [bigrams(str(w))]), default=0.0)


def features(r: Retrieval) -> list[float]:
    """The decision signals of one retrieval, in FEATURES order (all zeros without hits)."""
    if not r.hits:
        return [0.0] * len(FEATURES)
    top, rest = r.hits[0], r.hits[1:]
    meta = top.chunk.meta
    is_faq = meta.get("kind") == "faq"
    second = rest[0] if rest else None
    other_faq = max((h.faq for h in rest if h.chunk.meta.get("kind") == "faq"), default=0.0)
    places = r.places
    region = str(meta.get("region") or NATIONAL)
    own = r.snap.covered.get(places.region, set()) if r.snap and places and places.region else set()
    agree = bool(second) and (second.chunk.doc_id == top.chunk.doc_id
                              or second.chunk.doc_id in meta.get("docs", [])
                              or top.chunk.doc_id in second.chunk.meta.get("docs", []))
    return [
        top.faq if is_faq else 0.0,
        top.dense,
        math.log1p(max(top.bm25, 0.0)),
        r.coverage,
        math.log(max(min(r.margin, 10.0), 1e-3)),
        math.log(max(min(top.score / second.score if second and second.score > 0 else 10.0, 10.0), 1e-3)),
        float(is_faq),
        (top.faq - other_faq) if is_faq else 0.0,
        float(top.dense >= max(h.dense for h in r.hits)),
        float(top.bm25 >= max(h.bm25 for h in r.hits)),
        float(bool(places and places.region)),
        float(region in own),
        float(region == NATIONAL),
        float(agree),
        math.log1p(len(r.tokens)),
        float(r.lang == "en"),
        wording_overlap(r.question, meta) if is_faq else 0.0,
        _topic_margin(r),
    ]


def _topic_margin(r: Retrieval) -> float:
    """How much closer the question is to the top entry's topic's phrasings (all places) than to any
    other topic's (bot/topics.py); 0.0 without a question vector (BM25 mode)."""
    if r.snap is None or r.query_vec is None or not len(r.snap.faq_rows):
        return 0.0
    similarities = r.snap.faq_vectors @ np.asarray(r.query_vec, dtype=r.snap.faq_vectors.dtype)
    return topic_margin(similarities, r.snap.faq_topic_rows, r.hits[0].chunk.meta)


@dataclass
class DecisionModel:
    """Logistic regression on standardised features; answer when P(top-1 right) ≥ threshold."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float
    report: dict[str, Any] = field(default_factory=dict)

    def probability(self, r: Retrieval) -> float:
        return float(self.probabilities(np.array([features(r)]))[0])

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = ((x - np.array(self.mean)) / np.array(self.scale)) @ np.array(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def accepts(self, r: Retrieval) -> bool:
        return bool(r.hits) and self.probability(r) >= self.threshold

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> DecisionModel | None:
        """The model at `path`, or None if there is none or it was trained on other features."""
        if not path.is_file():
            return None
        model = cls(**json.loads(path.read_text(encoding="utf-8")))
        return model if tuple(model.features) == FEATURES else None


def fit(x: np.ndarray, y: np.ndarray, threshold: float = 0.5, c: float = 1.0) -> DecisionModel:
    """Fit the logistic regression (scikit-learn) on feature rows `x` and labels `y` (1 = top-1 right)."""
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, y)
    return DecisionModel(list(FEATURES), mean.tolist(), scale.tolist(), lr.coef_[0].tolist(),
                         float(lr.intercept_[0]), threshold)


def choose_threshold(p: Sequence[float], right: Sequence[bool], answerable: Sequence[bool],
                     max_wrong: float, min_recall: float) -> float:
    """The lowest threshold (most answers) whose wrong answers ≤ max_wrong of answerable questions
    and that still refuses ≥ min_recall of the questions that must get no_answer."""
    n_ans = max(sum(answerable), 1)
    n_no = sum(not a for a in answerable)
    best = 1.0
    for th in sorted({float(v) for v in p if v >= 0}, reverse=True):
        took = [pi >= th for pi in p]
        wrong = sum(t and a and not ok for t, a, ok in zip(took, answerable, right, strict=True))
        refused_no = sum(not t and not a for t, a in zip(took, answerable, strict=True))
        if wrong / n_ans > max_wrong or (n_no and refused_no / n_no < min_recall):
            break
        best = th
    return best
