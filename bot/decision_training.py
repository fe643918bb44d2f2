"""Train and cross-validate the learned answer decision (bot/decision.py) on evaluation outcomes.

A row per question whose answer the decision actually decides (retrieval found something, the
place is covered, the top is not a "we do not cover this" note); label 1 when the top-1 source is
one of the question's expected ids. The threshold is chosen on out-of-fold probabilities of the
training questions only (nested), for at most `max_wrong` wrong answers among answerable questions
and a `no_answer` recall of at least `min_recall`. The regularisation strength C is chosen from
C_GRID by the same cross-validation: the C that answers most while the CV means stay within the
limits (strong regularisation keeps the few-hundred-question fit from trusting one signal too much).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.decision import DecisionModel, choose_threshold, features, fit

MAX_WRONG, MIN_RECALL = 0.02, 0.97
FOLDS, REPEATS, SEED = 5, 3, 7
C_GRID = (0.01, 0.02, 0.05, 0.1, 0.3, 1.0)


@dataclass
class Row:
    """One evaluation question as the decision sees it."""

    x: list[float]
    decides: bool  # False: refused (or not answerable) whatever the model says
    right: bool  # the top-1 is an expected source
    answerable: bool


def rows_of(outcomes: list) -> list[Row]:  # list[Outcome]; typed loosely to avoid an import cycle
    rows = []
    for o in outcomes:
        r = o.retrieval
        top = r.hits[0].chunk if r.hits else None
        decides = (r.refusal is None and top is not None and r.places is not None
                   and not r.places.fallback_parent and not top.meta.get("gap"))
        right = bool(o.item.expect and top is not None and top.doc_id in o.item.expect)
        rows.append(Row(features(r) if decides else [], decides, right, bool(o.item.expect)))
    return rows


def _probabilities(model: DecisionModel, rows: list[Row]) -> np.ndarray:
    p = np.full(len(rows), -1.0)
    idx = [i for i, row in enumerate(rows) if row.decides]
    if idx:
        p[idx] = model.probabilities(np.array([rows[i].x for i in idx]))
    return p


def _fit(rows: list[Row], c: float) -> DecisionModel:
    train = [r for r in rows if r.decides]
    return fit(np.array([r.x for r in train]), np.array([int(r.right) for r in train]), c=c)


def _folds(rows: list[Row], k: int, seed: int) -> list[np.ndarray]:
    """Stratified folds (by answerable × top-1 right) as arrays of row indices."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[bool, bool, bool], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r.answerable, r.right, r.decides), []).append(i)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for key in sorted(groups):
        members = rng.permutation(groups[key]).tolist()
        for j, i in enumerate(members):
            folds[(j + offset) % k].append(i)
        offset += len(members)
    return [np.array(sorted(f), dtype=int) for f in folds]


def out_of_fold(rows: list[Row], c: float, k: int = FOLDS, seed: int = SEED) -> np.ndarray:
    """Each row's probability from a model trained without its fold."""
    p = np.full(len(rows), -1.0)
    for test in _folds(rows, k, seed):
        train = np.setdiff1d(np.arange(len(rows)), test)
        model = _fit([rows[i] for i in train], c)
        p[test] = _probabilities(model, [rows[i] for i in test])
    return p


def train(rows: list[Row], c: float, max_wrong: float = MAX_WRONG, min_recall: float = MIN_RECALL) -> DecisionModel:
    """A model fitted on all rows, its threshold chosen on their out-of-fold probabilities."""
    model = _fit(rows, c)
    model.threshold = _threshold(rows, out_of_fold(rows, c), max_wrong, min_recall)
    return model


def _threshold(rows: list[Row], p: np.ndarray, max_wrong: float, min_recall: float) -> float:
    return choose_threshold(p.tolist(), [r.right for r in rows], [r.answerable for r in rows],
                            max_wrong, min_recall)


def cross_validate(rows: list[Row], c: float, k: int = FOLDS, repeats: int = REPEATS, max_wrong: float = MAX_WRONG,
                   min_recall: float = MIN_RECALL) -> list[tuple[np.ndarray, DecisionModel]]:
    """(held-out row indices, model trained and thresholded without them) for repeats × k folds."""
    out = []
    for rep in range(repeats):
        for test in _folds(rows, k, SEED + rep):
            train_idx = np.setdiff1d(np.arange(len(rows)), test)
            out.append((test, train([rows[i] for i in train_idx], c, max_wrong, min_recall)))
    return out


def held_out(rows: list[Row], folds: list[tuple[np.ndarray, DecisionModel]]) -> dict[str, float]:
    """Mean over folds of answered (right) and wrong answers among answerable rows, and no_answer recall."""
    per = []
    for test, model in folds:
        sub = [rows[i] for i in test]
        took = _probabilities(model, sub) >= model.threshold
        n_ans = max(sum(r.answerable for r in sub), 1)
        n_no = max(sum(not r.answerable for r in sub), 1)
        per.append((sum(t and r.decides and r.answerable and r.right for t, r in zip(took, sub, strict=True)) / n_ans,
                    sum(t and r.decides and r.answerable and not r.right for t, r in zip(took, sub, strict=True)) / n_ans,
                    sum(not (t and r.decides) and not r.answerable for t, r in zip(took, sub, strict=True)) / n_no))
    answered, wrong, recall = np.mean(per, axis=0)
    return {"answered": float(answered), "wrong_answerable": float(wrong), "no_answer_recall": float(recall)}


def choose_c(rows: list[Row], max_wrong: float = MAX_WRONG, min_recall: float = MIN_RECALL) -> tuple[float, dict]:
    """The C of C_GRID whose cross-validated decision answers most within the limits (else the most
    honest one), and every C's CV means."""
    table = {c: held_out(rows, cross_validate(rows, c, max_wrong=max_wrong, min_recall=min_recall)) for c in C_GRID}
    within = [c for c, m in table.items() if m["wrong_answerable"] <= max_wrong and m["no_answer_recall"] >= min_recall]
    best = max(within, key=lambda c: table[c]["answered"]) if within else \
        min(table, key=lambda c: table[c]["wrong_answerable"])
    return best, {str(c): {k: round(v, 4) for k, v in m.items()} for c, m in table.items()}
