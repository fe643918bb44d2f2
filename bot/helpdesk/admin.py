"""Admin commands that learn from the helpdesk: `qiuxue kb approve` and `qiuxue report`.

- `kb approve [ID …]`: approved draft FAQ entries are written to `knowledge.approved_dir`
  (a FAQ YAML file that `qiuxue ingest` reads with the rest of the knowledge base); without ids
  it lists the drafts.
- `report [--days N] [--json]`: questions answered `no_answer`, 👎 answers and hand-off reasons
  over a period, grouped by similar question (embedding clusters) and by region, most frequent
  first — what to add to the knowledge base next.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import select

from bot.core.redact import contains_pii
from bot.core.store import Conversation, Feedback, TranscriptLine
from bot.helpdesk.store import DraftFaq, Ticket
from common.clock import utcnow
from common.db import open_database
from common.settings import Config

if TYPE_CHECKING:
    from bot.query_vectors import QueryVectors

APPROVED_FILE = "helpdesk-faq.yaml"


class PiiInDraft(ValueError):
    """A draft still holds a personal number in clear: it is never approved."""


def approve(cfg: Config, ids: list[int], by: str) -> list[DraftFaq]:
    """Mark drafts approved and (re)write the approved FAQ file from every approved draft."""
    sessions = open_database(cfg)
    with sessions.begin() as s:
        drafts = [s.get(DraftFaq, i) for i in ids]
        missing = [i for i, d in zip(ids, drafts, strict=True) if d is None]
        if missing:
            raise KeyError(f"no draft FAQ {', '.join(map(str, missing))}")
        leaking = [f"#{d.id}" for d in drafts if contains_pii(d.question) or contains_pii(d.answer)]
        if leaking:
            raise PiiInDraft(f"draft FAQ {', '.join(leaking)} still contains an ID-card, phone or bank-card "
                             "number; edit it in the database before approving")
        for d in drafts:
            d.status, d.approved_by = "approved", by
        approved = list(s.scalars(select(DraftFaq).where(DraftFaq.status == "approved").order_by(DraftFaq.id)))
        entries = [{
            "id": f"faq-helpdesk-{d.id}", "region": d.region or "全国",
            "scope": "national" if not d.region else "city", "year": d.created_at.year,
            "sources": [f"helpdesk ticket #{d.ticket_id}"], "docs": [], "question": d.question,
            "phrasings": [d.question], "answer": d.answer, "approved_by": d.approved_by,
        } for d in approved]
    folder = cfg.path(cfg.knowledge.approved_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{APPROVED_FILE}.tmp"
    tmp.write_text("# Written by `qiuxue kb approve` from helpdesk answers. Edit via the database, not here.\n"
                   + yaml.safe_dump(entries, allow_unicode=True, sort_keys=False), encoding="utf-8")
    tmp.replace(folder / APPROVED_FILE)
    return [d for d in drafts if d is not None]


def gather(cfg: Config, days: float) -> list[dict[str, Any]]:
    """Every unanswered question, 👎 answer and hand-off in the period, as report items."""
    since = utcnow() - timedelta(days=days)
    sessions = open_database(cfg)
    items: list[dict[str, Any]] = []
    with sessions() as s:
        outs = s.execute(select(TranscriptLine.meta, Conversation.region)
                         .join(Conversation, Conversation.id == TranscriptLine.conversation_id)
                         .where(TranscriptLine.direction == "out", TranscriptLine.created_at >= since,
                                TranscriptLine.meta["action"].as_string() == "no_answer")).all()
        asked_ids = {int(meta.get("reply_to") or 0) for meta, _ in outs}
        asked = dict(s.execute(select(TranscriptLine.id, TranscriptLine.text)
                               .where(TranscriptLine.id.in_(asked_ids))).all()) if asked_ids else {}
        for meta, region in outs:
            text = asked.get(int(meta.get("reply_to") or 0))
            if text is not None:
                items.append({"kind": "no_answer", "question": text, "region": meta.get("region") or region})
        for fb in s.scalars(select(Feedback).where(Feedback.vote < 0, Feedback.created_at >= since)):
            items.append({"kind": "disliked", "question": fb.question, "region": fb.region})
        for ticket in s.scalars(select(Ticket).where(Ticket.created_at >= since)):
            items.append({"kind": "handoff", "question": ticket.reason, "region": ticket.region})
    return items


# multilingual-e5 puts unrelated short Chinese questions at cosine 0.81–0.90 and paraphrases
# ("今天天气怎么样" / "今天天气如何" 0.99, "拖欠工资怎么办" / "老板欠薪三个月" 0.93): cluster at 0.92.
CLUSTER_SIMILARITY = 0.92
# Only the most frequent distinct questions are embedded and clustered (the rest are counted as "rarer"):
# a month of tens of thousands of one-off messages must not make the report wait on the model.
CLUSTER_MOST = 500


def question_vectors(cfg: Config, size: int) -> QueryVectors:
    """Question vectors kept between reports (the console's insight page): a reload embeds only new questions.
    The model loads on the first question embedded."""
    from bot.query_vectors import QueryVectors
    from ingest.embedders import embedder_from_config

    return QueryVectors(lambda texts: embedder_from_config(cfg).embed_queries(texts), size)


def cluster(cfg: Config, items: list[dict[str, Any]], threshold: float = CLUSTER_SIMILARITY,
            embed: Callable[[list[str]], Any] | None = None, most: int = CLUSTER_MOST) -> list[dict[str, Any]]:
    """Greedy clusters of similar questions (cosine ≥ threshold), largest first.

    Each distinct question is embedded once and compared with every cluster centre in one matrix
    product, so a week of thousands of unanswered messages (many of them the same words) stays quick.
    `embed` (texts → query vectors) defaults to the configured embedder; the console passes a cached one.
    Only the `most` most frequent distinct questions are clustered; items of the others are left out
    (`unclustered` counts them).
    """
    if not items:
        return []
    import numpy as np  # the model and numpy load only when there is something to cluster

    from ingest.embedders import embedder_from_config

    distinct = [q for q, _ in Counter(i["question"] for i in items).most_common(most)]
    vectors = (embed or embedder_from_config(cfg).embed_queries)(distinct)
    centres = np.empty((len(distinct), vectors.shape[1]), dtype=vectors.dtype)
    group_of: dict[str, int] = {}
    n = 0  # clusters so far; centres[:n] are their first questions' vectors
    for question, vec in zip(distinct, vectors, strict=True):
        sims = centres[:n] @ vec
        best = int(np.argmax(sims)) if n else -1
        if best >= 0 and sims[best] >= threshold:
            group_of[question] = best
        else:
            centres[n], group_of[question] = vec, n
            n += 1
    groups: list[dict[str, Any]] = [{"items": []} for _ in range(n)]
    for item in items:
        if item["question"] in group_of:
            groups[group_of[item["question"]]]["items"].append(item)
    out = []
    for g in groups:
        members = g["items"]
        out.append({"example": Counter(m["question"] for m in members).most_common(1)[0][0], "count": len(members),
                    "kinds": dict(Counter(m["kind"] for m in members)),
                    "regions": dict(Counter(m["region"] or "?" for m in members).most_common()),
                    "questions": sorted({m["question"] for m in members})[:10]})
    return sorted(out, key=lambda g: -g["count"])


def unclustered(items: list[dict[str, Any]], groups: list[dict[str, Any]]) -> int:
    """How many items `cluster` left out (their questions were rarer than the `most` it clustered)."""
    return len(items) - sum(g["count"] for g in groups)


def cmd_approve(cfg: Config, args: argparse.Namespace) -> int:
    if not args.ids:
        with open_database(cfg)() as s:
            for d in s.scalars(select(DraftFaq).order_by(DraftFaq.id)):
                print(f"#{d.id} [{d.status}] {d.region or '全国'} Q: {d.question} → A: {d.answer[:80]}")
        return 0
    try:
        done = approve(cfg, args.ids, args.by)
    except (KeyError, PiiInDraft) as exc:
        print(str(exc).strip("'\""))
        return 1
    target = Path(cfg.path(cfg.knowledge.approved_dir)) / APPROVED_FILE
    print(f"approved {', '.join(f'#{d.id}' for d in done)} → {target}; run `qiuxue ingest` to publish")
    return 0


def cmd_report(cfg: Config, args: argparse.Namespace) -> int:
    items = gather(cfg, args.days)
    groups = cluster(cfg, items)
    by_region = Counter(i["region"] or "?" for i in items).most_common()
    if args.json:
        print(json.dumps({"days": args.days, "items": len(items), "groups": groups,
                          "unclustered": unclustered(items, groups), "by_region": dict(by_region)},
                         ensure_ascii=False))
        return 0
    print(f"last {args.days:g} days: {len(items)} unanswered / 👎 / hand-offs")
    print(f"{'count':>5}  {'kinds':<28} {'regions':<24} example")
    for g in groups:
        kinds = ",".join(f"{k}:{v}" for k, v in g["kinds"].items())
        regions = ",".join(f"{k}:{v}" for k, v in list(g["regions"].items())[:3])
        print(f"{g['count']:>5}  {kinds:<28} {regions:<24} {g['example'][:60]}")
    if rest := unclustered(items, groups):
        print(f"{rest:>5}  rarer questions, not clustered (only the {CLUSTER_MOST} most frequent are)")
    print("by region: " + ", ".join(f"{r} {n}" for r, n in by_region))
    return 0
