"""Eval summaries per index version: what `qiuxue eval` (or the console's "run eval") measured on a version.

One `kb_evals` row per run, keyed by the version the answerer had loaded (never "the newest version"), so
the console's insight page shows the live version's own numbers, or says it was not evaluated yet after a
refresh or a rollback to a version nobody measured. (`bot.eval_runner` runs an eval for the console.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from common.clock import utcnow
from common.db import Base, open_database
from common.settings import Settings
from ingest.versions import live_version


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
