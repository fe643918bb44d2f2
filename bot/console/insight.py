"""The insight page (admins): what to add to the knowledge base next.

The unanswered-question report of `qiuxue report` (`bot.helpdesk.admin`: no-answer questions, 👎 answers and
hand-offs, clustered by similar question) with counts by region and by day (an inline SVG bar chart), 👍/👎
per answer, hand-off reasons, and the eval summary of the live index version (`bot.eval_reports`: the numbers
of the newest `qiuxue eval` run on that very version, or "not evaluated yet"), with a "run eval" button
that runs `qiuxue eval --served` in the background with a progress bar, like the refresh.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from bot.accounts import Account, Role
from bot.core.store import Feedback, TranscriptLine
from bot.eval_reports import EvalReports
from bot.eval_runner import EvalRunner
from bot.helpdesk.admin import CLUSTER_MOST, cluster, gather, question_vectors, unclustered
from bot.helpdesk.store import Ticket
from common.clock import utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import sessionmaker

    from bot.console.app import Console


def by_day(items: list[dict[str, Any]], days: int) -> list[tuple[str, int]]:
    """Items per calendar day (UTC), oldest first, every day of the period present."""
    today = utcnow().date()
    counts = Counter(str(i["day"]) for i in items if i.get("day"))
    return [(str(d), counts.get(str(d), 0)) for d in (today - timedelta(days=n) for n in range(days - 1, -1, -1))]


def chart(series: list[tuple[str, int]], width: int = 720, height: int = 160) -> dict[str, Any]:
    """Bar geometry for the template's inline SVG."""
    top = max((n for _, n in series), default=0) or 1
    step = width / max(len(series), 1)
    bars = [{"x": round(i * step + 1, 1), "w": round(max(step - 2, 1), 1), "h": round(n / top * (height - 20), 1),
             "y": round(height - n / top * (height - 20), 1), "day": day, "n": n} for i, (day, n) in enumerate(series)]
    return {"bars": bars, "width": width, "height": height, "top": top}


def votes(sessions: sessionmaker, days: float, limit: int = 30) -> list[dict[str, Any]]:
    """👍 and 👎 per answer (most 👎 first)."""
    since = utcnow() - timedelta(days=days)
    with sessions() as s:
        rows = s.execute(select(Feedback.answer, func.sum(case((Feedback.vote > 0, 1), else_=0)),
                                func.sum(case((Feedback.vote < 0, 1), else_=0)))
                         .where(Feedback.created_at >= since).group_by(Feedback.answer)).all()
    return sorted(({"answer": a[:160], "up": int(u or 0), "down": int(d or 0)} for a, u, d in rows),
                  key=lambda r: (-r["down"], -r["up"]))[:limit]


def reasons(sessions: sessionmaker, days: float) -> list[tuple[str, int]]:
    since = utcnow() - timedelta(days=days)
    with sessions() as s:
        rows = s.execute(select(Ticket.reason, func.count()).where(Ticket.created_at >= since)
                         .group_by(Ticket.reason)).all()
    return sorted(((r, int(n)) for r, n in rows), key=lambda x: -x[1])


def days_of(sessions: sessionmaker, days: float) -> list[dict[str, Any]]:
    """The day of each unanswered question in the period (for the chart)."""
    since = utcnow() - timedelta(days=days)
    with sessions() as s:
        moments = s.scalars(select(TranscriptLine.created_at).where(
            TranscriptLine.direction == "out", TranscriptLine.created_at >= since,
            TranscriptLine.meta["action"].as_string() == "no_answer")).all()
    return [{"day": m.date()} for m in moments]


QUESTIONS_KEPT = 20_000  # question vectors kept between views (about 1.5 KB each)


def register(console: Console) -> None:
    reports = EvalReports(console.cfg)
    runner = EvalRunner(console.cfg, console.cfg.console.eval_set, console.cfg.console.eval_frozen,
                        knowledge=console.hub.dialogue.answerer.knowledge)

    seen = question_vectors(console.cfg, QUESTIONS_KEPT)

    def figures(days: int) -> dict[str, Any]:
        """Everything the page shows (database reads and clustering: run off the event loop)."""
        items = gather(console.cfg, days)
        groups = cluster(console.cfg, items, embed=seen.get_many)
        return {"days": days, "total": len(items), "groups": groups[:30], "rarer": unclustered(items, groups),
                "regions": Counter(i["region"] or "?" for i in items).most_common(),
                "chart": chart(by_day(days_of(console.sessions, days), min(days, 60))),
                "votes": votes(console.sessions, days), "reasons": reasons(console.sessions, days),
                "evaluation": reports.live(), "cluster_most": CLUSTER_MOST}

    async def insight(request: Request, account: Account) -> Response:
        try:
            days = min(max(int(request.query_params.get("days", "30")), 1), 365)
        except ValueError:
            days = 30
        shown = await run_in_threadpool(figures, days)
        return console.render(request, "insight.html", account, job=runner.job.as_json() if runner.job else None,
                              **shown)

    async def run_eval(request: Request, account: Account) -> Response:
        runner.start(f"console:{account.name}")
        console.audit(request, account, "eval_run")
        return RedirectResponse("/console/insight", status_code=303)

    async def eval_progress(request: Request, account: Account) -> Response:
        return JSONResponse(runner.job.as_json() if runner.job else {"running": False, "stage": "", "result": ""})

    console.page("/insight", insight, Role.ADMIN)
    console.page("/insight/eval", run_eval, Role.ADMIN, methods=("POST",))
    console.page("/insight/eval/progress", eval_progress, Role.ADMIN)
