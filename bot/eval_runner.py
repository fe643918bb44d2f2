"""The console's "evaluate the live version": `qiuxue eval --served` in a background thread, one at a time,
its progress followed like a refresh's (`bot.kb_admin.BackgroundJob`), its summary kept for the version it
measured (`bot.eval_reports`).
"""

from __future__ import annotations

import threading
from typing import Any

from bot.eval_reports import EvalReports
from bot.kb_admin import BackgroundJob
from common.settings import Settings


class EvalRunner:
    """`qiuxue eval --served` on the live version in a background thread; one at a time."""

    def __init__(self, cfg: Settings, dev: str, frozen: str, knowledge: Any = None) -> None:
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
