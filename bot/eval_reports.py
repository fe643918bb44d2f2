"""Eval summaries per index version: what `qiuxue eval` (or the console's "run eval") measured on a version.

One `kb_evals` row per run, keyed by the version the answerer had loaded (never "the newest version"), so
the console's insight page shows the live version's own numbers, or says it was not evaluated yet after a
refresh or a rollback to a version nobody measured. `EvalRunner` runs `qiuxue eval --served` in a thread
for the console, with its progress (`bot.kb_admin.BackgroundJob`, the same the refresh bar follows).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from bot.kb_admin import BackgroundJob
from common.clock import utcnow
from common.db import Base, open_database
from common.settings import Settings
from ingest.versions import live_version

DEV_SET, FROZEN_SET = "tests/eval/questions.yaml", "tests/eval/frozen.yaml"


class EvalReport(Base):
    __tablename__ = "kb_evals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64), index=True)  # the index version evaluated
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    # {"version", "mode": "full"|"served", "sets": {"dev": {"path", "questions", "answered", …}, …}, "cv": {…}}
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EvalReports:
    def __init__(self, cfg: Settings) -> None:
        self.cfg = cfg
        self.sessions = open_database(cfg)

    def save(self, summary: dict[str, Any], by: str) -> None:
        with self.sessions.begin() as s:
            s.add(EvalReport(version=str(summary["version"]), created_by=by[:200], summary=summary))

    def latest(self, version: str) -> EvalReport | None:
        with self.sessions() as s:
            return s.scalars(select(EvalReport).where(EvalReport.version == version)
                             .order_by(EvalReport.id.desc()).limit(1)).first()

    def live(self) -> dict[str, Any]:
        """The live version (id, when it was built, by whom) and its newest eval report (None: not evaluated)."""
        live = live_version(self.sessions)
        if live is None:
            return {"version": None, "built_at": None, "built_by": "", "report": None}
        return {"version": live.version, "built_at": live.created_at, "built_by": live.created_by,
                "report": self.latest(live.version)}


class EvalRunner:
    """`qiuxue eval --served` on the live version in a background thread; one at a time."""

    def __init__(self, cfg: Settings, dev: str = DEV_SET, frozen: str = FROZEN_SET, knowledge: Any = None) -> None:
        """`knowledge`: the serving bot's `LiveKnowledge`, shared so the run loads no second index copy."""
        self.cfg, self.dev, self.frozen, self.knowledge = cfg, dev, frozen, knowledge
        self.job: BackgroundJob | None = None
        self._lock = threading.Lock()

    def start(self, by: str) -> BackgroundJob:
        with self._lock:
            if self.job is not None and self.job.as_json()["running"]:
                return self.job
            job = self.job = BackgroundJob(by)
        threading.Thread(target=self._run, args=(job,), name="qiuxue-eval", daemon=True).start()
        return job

    def _run(self, job: BackgroundJob) -> None:
        def progress(done: int, total: int) -> None:
            job.stage, job.done, job.total = "asking", done, total

        try:
            from bot import evaluation  # numpy and the decision model: loaded only when an eval runs

            sets = evaluation.question_sets(self.cfg, self.dev, self.frozen)
            answerer = evaluation.Answerer(self.cfg, knowledge=self.knowledge)  # its own: llm is switched off
            summary = evaluation.evaluate_served(self.cfg, sets, answerer, on_progress=progress)
            EvalReports(self.cfg).save(summary, job.by)
            job.result, job.stage = f"{summary['version']} evaluated", "done"
        except Exception as exc:  # shown on the page; nothing is stored
            job.result, job.stage = f"eval failed: {exc}", "failed"
