"""`qiuxue eval`: how well the bot finds and answers, per retrieval mode, on tests/eval/questions.yaml.

Reports hit@1, hit@3, MRR (answerable questions), answer precision, wrong-answer rate, no_answer
precision/recall and latency p50/p95 after warm-up, for BM25 only, dense only (each embedding
backend) and hybrid. `--calibrate` grid-searches the answer thresholds on the set (the shipped
values in config.yaml come from it); the "2-fold CV" row shows them chosen on one half of the set
and scored on the other, the honest estimate for unseen questions. The learned decision's rows are
means over 5-fold × 3 cross-validation; `asked_place` counts refusals where the bot asks for the
worker's place instead (`bot/place_question.py`): neither an answer nor a wrong answer.

Every run keeps the served configuration's numbers (hybrid, the configured decision; dev set, frozen
split, CV mean) for the index version it measured (`bot.eval_reports`), which the console's insight page
shows for the live version. `--served` runs only that configuration: quick, and what the console runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot.answering import Answerer, Retrieval, Thresholds, decide
from bot.decision import DecisionModel
from bot.decision_training import choose_c, cross_validate, rows_of, train
from bot.eval_reports import EvalReports
from bot.place_question import places_to_offer
from common.settings import Config
from common.yamlio import read_yaml
from ingest.embedders import make_embedder
from ingest.refresh import refresh

DEFAULT_SET = Path("tests/eval/questions.yaml")
FROZEN_SET = Path("tests/eval/frozen.yaml")
GRID = {
    "faq": [round(x, 2) for x in np.arange(0.80, 0.97, 0.02)],
    "dense": [round(x, 2) for x in np.arange(0.70, 0.93, 0.02)],
    "coverage": [0.0, 0.2, 0.4, 0.5, 0.6, 0.7],
    "margin": [1.0, 1.05, 1.1, 1.15, 1.2, 1.3],
}
MAX_WRONG, MIN_NO_ANSWER_RECALL = 0.03, 0.90


@dataclass
class EvalItem:
    question: str
    region: str | None
    expect: list[str] | None  # None: the bot must answer no_answer


@dataclass
class Outcome:
    item: EvalItem
    retrieval: Retrieval
    latency_ms: float
    places_offered: list[str] = field(default_factory=list)  # a refusal here asks "你在哪个省/市？" with these


def load_items(path: Path) -> list[EvalItem]:
    raw = read_yaml(path)
    return [EvalItem(str(r.get("q") or ""), r.get("region"),
                     None if r["expect"] == "no_answer" else [str(x) for x in r["expect"]]) for r in raw]


def run(answerer: Answerer, items: list[EvalItem], mode: str, warmup: int = 10,
        on_each: Callable[[], None] | None = None) -> list[Outcome]:
    for item in items[:warmup]:
        answerer.respond(answerer.retrieve(item.question, item.region, mode))
    answerer.clear_caches()  # each mode's latency embeds every question afresh (not the last mode's cache)
    outcomes = []
    for item in items:
        start = time.perf_counter()
        r = answerer.retrieve(item.question, item.region, mode)
        answerer.respond(r)  # timed as a worker experiences it: retrieval + decision + composing
        outcomes.append(Outcome(item, r, (time.perf_counter() - start) * 1000))
        if on_each is not None:
            on_each()
    return outcomes


def _top_source(r: Retrieval, th: Thresholds, model: DecisionModel | None = None) -> str | None:
    """The source id the bot would answer from, or None for no_answer."""
    if r.refusal is not None or r.places is None:
        return None
    chunk = decide(r, th, model)
    if chunk is None or r.places.fallback_parent or chunk.meta.get("gap"):
        return None
    return chunk.doc_id


def score(outcomes: list[Outcome], th: Thresholds, model: DecisionModel | None = None) -> dict[str, float]:
    return score_pairs([(o, th, model) for o in outcomes])


def score_pairs(pairs: list[tuple[Outcome, Thresholds, DecisionModel | None]]) -> dict[str, float]:
    """Metrics over outcomes, each judged under its own thresholds / decision model."""
    outcomes = [o for o, _, _ in pairs]
    answerable = [o for o in outcomes if o.item.expect]
    ranks = []
    for o in answerable:
        ranked = o.retrieval.ranked
        ranks.append(next((i + 1 for i, d in enumerate(ranked) if d in o.item.expect), 0))
    answered = correct = wrong = wrong_answerable = suggested = asked = asked_no = 0
    tp = pred_no = 0
    for o, th, model in pairs:
        source = _top_source(o.retrieval, th, model)
        if source is None:
            pred_no += 1
            tp += o.item.expect is None
            if o.places_offered:  # not an answer, not a refusal: the bot asks for the place
                asked += bool(o.item.expect)
                asked_no += o.item.expect is None
            offered = [d for d, _ in Answerer.suggestions_for(o.retrieval)] if o.retrieval.snap else []
            suggested += bool(o.item.expect) and any(d in o.item.expect for d in offered)
            continue
        answered += 1
        if o.item.expect and source in o.item.expect:
            correct += 1
        else:
            wrong += 1
            wrong_answerable += bool(o.item.expect)
    expected_no = sum(o.item.expect is None for o in outcomes)
    lat = np.array([o.latency_ms for o in outcomes]) if outcomes else np.zeros(1)
    n_ans = max(len(answerable), 1)
    return {
        "questions": len(outcomes), "answerable": len(answerable),
        "hit@1": sum(r == 1 for r in ranks) / n_ans,
        "hit@3": sum(1 <= r <= 3 for r in ranks) / n_ans,
        "mrr": sum(1 / r for r in ranks if r) / n_ans,
        "answered": correct / n_ans,  # share of answerable questions answered correctly
        "suggested": suggested / n_ans,  # refused, but a right FAQ entry was among the suggestions
        "asked_place": asked / n_ans,  # refused in national text, the place asked for instead (answerable)
        "asked_place_no_answer": asked_no / max(expected_no_count(outcomes), 1),  # … for no_answer questions
        "answer_precision": correct / answered if answered else 0.0,
        "wrong_rate": wrong / max(len(outcomes), 1),
        "wrong_answerable": wrong_answerable / n_ans,  # answerable questions answered from a wrong source
        "no_answer_precision": tp / pred_no if pred_no else 0.0,
        "no_answer_recall": tp / expected_no if expected_no else 0.0,
        "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
    }


def expected_no_count(outcomes: list[Outcome]) -> int:
    return sum(o.item.expect is None for o in outcomes)


def offer_places(answerer: Answerer, outcomes: list[Outcome]) -> None:
    """Fill in, for each question with no place known, the places the bot would ask about if refused
    (with the answerer's current decision model)."""
    for o in outcomes:
        o.places_offered = places_to_offer(answerer, o.retrieval)


def confusion(outcomes: list[Outcome], th: Thresholds, model: DecisionModel | None) -> list[str]:
    """One line per answerable question answered wrongly or refused: what it got instead."""
    lines = []
    for o in outcomes:
        if not o.item.expect:
            source = _top_source(o.retrieval, th, model)
            if source is not None:
                lines.append(f"WRONG   {o.item.question}  → answered {source}  (expected no_answer)")
            elif o.places_offered:
                lines.append(f"ASKED   {o.item.question}  → 你在哪个省/市？ {o.places_offered} (expected no_answer)")
            continue
        source = _top_source(o.retrieval, th, model)
        if source in o.item.expect:
            continue
        where = f" [region {o.item.region}]" if o.item.region else ""
        if source is not None:
            lines.append(f"WRONG   {o.item.question}{where}  → answered {source}  (expected {o.item.expect[0]})")
        else:
            offered = [d for d, _ in Answerer.suggestions_for(o.retrieval)] if o.retrieval.snap else []
            top = o.retrieval.ranked[:1]
            if o.places_offered:
                lines.append(f"ASKED   {o.item.question}  → 你在哪个省/市？ {o.places_offered} "
                             f"(expected {o.item.expect[0]})")
                continue
            lines.append(f"REFUSED {o.item.question}{where}  → top {top}, offered {offered} "
                         f"(expected {o.item.expect[0]})")
    return lines


def calibrate(outcomes: list[Outcome], base: Thresholds) -> Thresholds:
    """Thresholds that answer the most questions correctly within the wrong-answer and recall limits."""
    best, best_key = base, (-1.0, 0.0)
    for faq, dense, cov, margin in itertools.product(GRID["faq"], GRID["dense"], GRID["coverage"],
                                                     GRID["margin"]):
        th = Thresholds(faq, dense, cov, margin)
        m = score(outcomes, th)
        if m["wrong_rate"] > MAX_WRONG or m["no_answer_recall"] < MIN_NO_ANSWER_RECALL:
            continue
        key = (m["answered"] + m["hit@3"], -m["wrong_rate"])
        if key > best_key:
            best, best_key = th, key
    return best


def cross_validated(outcomes: list[Outcome], base: Thresholds) -> dict[str, float]:
    """Thresholds calibrated on one half, scored on the other (2 folds), metrics pooled."""
    folds = [outcomes[0::2], outcomes[1::2]]
    pooled: list[tuple[Outcome, Thresholds]] = []
    for k in (0, 1):
        th = calibrate(folds[1 - k], base)
        pooled.extend((o, th, None) for o in folds[k])
    return score_pairs(pooled)


def _backend_config(cfg: Config, backend: str) -> Config:
    """The same settings with another embedding backend and its own data_dir (under data/eval)."""
    return cfg.with_changes(data_dir=str(cfg.data_path / "eval" / backend),
                            embedding={"backend": backend,
                                       "model": "minilm" if backend == "sentence-transformers" else ""})


def learned_decision(cfg: Config, answerer: Answerer, outcomes: list[Outcome], base: Thresholds,
                     retrain: bool) -> dict:
    """The learned decision's cross-validated metrics (mean and spread over folds) and its final model.

    With `retrain`, C is chosen by cross-validation, the model fitted on all of `outcomes` and written
    to `retrieval.decision_model` (with its CV report); otherwise the shipped model is used for the
    in-sample and frozen rows. The answerer then decides with that model, and the places it would ask
    about are filled in (the *asked_place* column; in the CV rows, too, they come from the final model).
    """
    rows = rows_of(outcomes)
    path = cfg.path(cfg.retrieval.decision_model or "models/decision.json")
    model = DecisionModel.load(path)
    retrain = retrain or model is None
    c, c_table = choose_c(rows) if retrain else (float(model.report.get("c", 1.0)), {})  # type: ignore[union-attr]
    if retrain or model is None:
        model = train(rows, c)
    answerer.decision = model
    offer_places(answerer, outcomes)
    folds = [score_pairs([(outcomes[i], base, m) for i in test]) for test, m in cross_validate(rows, c)]
    mean = {k: float(np.mean([f[k] for f in folds])) for k in folds[0]}
    spread = {k: float(np.std([f[k] for f in folds])) for k in ("answered", "wrong_answerable", "no_answer_recall")}
    if retrain:
        model.report = {"trained_on": str(DEFAULT_SET), "questions": len(outcomes), "folds": len(folds), "c": c,
                        "cv_mean": {k: round(v, 4) for k, v in mean.items() if not k.endswith("_ms")},
                        "cv_std": {k: round(v, 4) for k, v in spread.items()}, "cv_by_c": c_table}
        model.save(path)
    return {"mean": mean, "std": spread, "folds": len(folds), "model": model}


def evaluate(cfg: Config, items: list[EvalItem], backends: list[str], do_calibrate: bool,
             frozen: list[EvalItem] | None = None, items_path: str = str(DEFAULT_SET),
             frozen_path: str = str(FROZEN_SET)) -> dict:
    base = Thresholds.from_config(cfg)
    rows: dict[str, dict[str, float]] = {}
    frozen_rows: dict[str, dict[str, float]] = {}
    chosen = base
    default = cfg.embedding.backend
    extra: dict = {}
    for backend in backends:
        bcfg = cfg if backend == default else _backend_config(cfg, backend)
        embedder = make_embedder(backend, "minilm" if backend == "sentence-transformers" else "")
        if backend != default or not _has_index(bcfg):
            refresh(bcfg, embedder=embedder, by="qiuxue eval")
        answerer = Answerer(bcfg, embedder=embedder)
        answerer.llm = None  # evaluate the offline answers
        modes = ["bm25", "dense", "hybrid"] if backend == default else ["dense", "hybrid"]
        for mode in modes:
            label = "bm25" if mode == "bm25" else f"{mode} ({backend})"
            outcomes = run(answerer, items, mode)
            th = calibrate(outcomes, base) if do_calibrate else base
            if backend == default and mode == "hybrid":
                chosen = th
                rows["hybrid, thresholds, 2-fold CV"] = cross_validated(outcomes, base)
                learned = learned_decision(cfg, answerer, outcomes, base, do_calibrate)
                model = learned["model"]
                rows[f"**hybrid, learned decision, {learned['folds']}-fold CV mean**"] = learned["mean"]
                rows["hybrid, learned decision (trained on this set)"] = score(outcomes, th, model)
                extra = {"cv_std": learned["std"], "model_threshold": model.threshold,
                         "confusion": confusion(outcomes, th, model),
                         "served": {"version": served_version(answerer), "mode": "full",
                                    "sets": {"dev": summary_of(score(outcomes, th, model), items_path)},
                                    "cv": {k: round(v, 4) for k, v in learned["mean"].items()}}}
                if frozen:
                    held = run(answerer, frozen, mode)
                    offer_places(answerer, held)
                    frozen_rows["hybrid, thresholds"] = score(held, th)
                    frozen_rows["**hybrid, learned decision**"] = score(held, th, model)
                    extra["served"]["sets"]["frozen"] = summary_of(frozen_rows["**hybrid, learned decision**"],
                                                                   frozen_path)
                    extra["frozen_confusion"] = confusion(held, th, model)
            rows[label if not (backend == default and mode == "hybrid") else f"{label}, thresholds"] = \
                score(outcomes, th)
    return {"thresholds": vars(chosen), "calibrated": do_calibrate, "modes": rows, "frozen": frozen_rows, **extra}


SUMMARY = ("questions", "answerable", "answered", "wrong_rate", "wrong_answerable", "no_answer_recall",
           "no_answer_precision", "answer_precision", "hit@1", "hit@3", "asked_place", "p50_ms", "p95_ms")


def summary_of(metrics: dict[str, float], path: str) -> dict:
    """The numbers an admin looks at, for one question set (what the console's insight page shows)."""
    return {"path": path, **{k: round(float(metrics[k]), 4) for k in SUMMARY}}


def served_version(answerer: Answerer) -> str:
    """The live version, looked up now (a version made live a moment ago is the one evaluated)."""
    snap = answerer.knowledge.current(fresh=True)
    if snap is None:
        raise RuntimeError("no live index version: run `qiuxue ingest` first")
    return snap.version


def evaluate_served(cfg: Config, sets: dict[str, tuple[str, list[EvalItem]]], answerer: Answerer | None = None,
                    on_progress: Callable[[int, int], None] | None = None) -> dict:
    """The live version as the bot serves it (hybrid, the configured decision) on each question set: the
    summary `qiuxue eval --served` stores for the version, and the console's "run eval" runs."""
    answerer = answerer or Answerer(cfg)
    answerer.llm = None  # evaluate the offline answers
    version = served_version(answerer)
    th, total, done = Thresholds.from_config(cfg), sum(len(items) for _, items in sets.values()), 0

    def tick() -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, total)

    summaries = {}
    for name, (path, items) in sets.items():
        outcomes = run(answerer, items, "hybrid", warmup=min(10, len(items)), on_each=tick)
        offer_places(answerer, outcomes)
        summaries[name] = summary_of(score(outcomes, th, answerer.decision), path)
    if served_version(answerer) != version:
        raise RuntimeError(f"the live version changed during the run (was {version}); run it again")
    return {"version": version, "mode": "served", "sets": summaries}


def question_sets(cfg: Config, dev: str, frozen: str) -> dict[str, tuple[str, list[EvalItem]]]:
    sets = {"dev": (dev, load_items(cfg.path(dev)))}
    if frozen:
        sets["frozen"] = (frozen, load_items(cfg.path(frozen)))
    return sets


def _has_index(cfg: Config) -> bool:
    from common.db import open_database
    from ingest.versions import live_version

    return live_version(open_database(cfg)) is not None


COLUMNS = ("hit@1", "hit@3", "mrr", "answered", "suggested", "asked_place", "answer_precision", "wrong_rate",
           "wrong_answerable", "no_answer_precision", "no_answer_recall", "asked_place_no_answer", "p50_ms", "p95_ms")


def _table(modes: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| mode | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
    for label, m in modes.items():
        cells = [f"{m[c]:.1f}" if c.endswith("_ms") else f"{m[c]:.3f}" for c in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def format_table(result: dict) -> str:
    lines = ["Development set (tests/eval/questions.yaml):", *_table(result["modes"])]
    th = result["thresholds"]
    lines.append(f"\nthresholds ({'calibrated on this set' if result['calibrated'] else 'from config.yaml'}): "
                 f"faq_min_similarity={th['faq']}, min_dense={th['dense']}, min_coverage={th['coverage']}, "
                 f"min_margin={th['margin']}")
    if "model_threshold" in result:
        std = result["cv_std"]
        lines.append(f"learned decision: P(top-1 right) ≥ {result['model_threshold']:.3f}; CV spread (std over "
                     f"folds): answered ±{std['answered']:.3f}, wrong_answerable ±{std['wrong_answerable']:.3f}, "
                     f"no_answer_recall ±{std['no_answer_recall']:.3f}")
    if result.get("frozen"):
        lines += ["\nFROZEN test split (tests/eval/frozen.yaml, never used for tuning):", *_table(result["frozen"])]
    for key, title in (("confusion", "development set"), ("frozen_confusion", "frozen split")):
        if result.get(key):
            lines += [f"\nConfusion, {title} (learned decision): answerable questions answered wrongly, refused "
                      "or asked for their place, and no_answer questions answered or asked", *result[key]]
    return "\n".join(lines)


def cmd_eval(cfg: Config, args: argparse.Namespace) -> int:
    if args.from_feedback:
        from bot.feedback_questions import confirmed_questions, write_review_file
        from common.db import open_database

        found = confirmed_questions(open_database(cfg))
        out = cfg.path(args.from_feedback)
        write_review_file(found, out)
        print(f"{len(found)} confirmed questions written to {out} — review them before adding any to the set")
        return 0
    if args.served:
        summary = evaluate_served(cfg, question_sets(cfg, args.set, args.frozen))
        print(json.dumps(summary, ensure_ascii=False, indent=1) if args.json else format_summary(summary))
        _keep(cfg, summary)
        return 0
    items = load_items(cfg.path(args.set))
    frozen = load_items(cfg.path(args.frozen)) if args.frozen else None
    backends = [b for b in args.backends.split(",") if b]
    default = cfg.embedding.backend
    backends = [default, *[b for b in backends if b != default]]
    result = evaluate(cfg, items, backends, args.calibrate, frozen, args.set, args.frozen)
    print(json.dumps(result, ensure_ascii=False, indent=1) if args.json else format_table(result))
    _keep(cfg, result["served"])
    return 0


def _keep(cfg: Config, summary: dict) -> None:
    """Store the summary for the version it measured (the console's insight page shows the live one's)."""
    EvalReports(cfg).save(summary, by="qiuxue eval")
    print(f"eval summary kept for index version {summary['version']}", file=sys.stderr)


def format_summary(summary: dict) -> str:
    lines = [f"index version {summary['version']} as served (hybrid, configured decision):"]
    for name, m in summary["sets"].items():
        lines.append(f"  {name:<7}{m['path']}: {m['questions']} questions, answered {m['answered']:.3f}, "
                     f"wrong {m['wrong_rate']:.3f}, no_answer recall {m['no_answer_recall']:.3f}, "
                     f"p95 {m['p95_ms']:.0f} ms")
    return "\n".join(lines)
