"""The knowledge-base admin service for chat front ends (Telegram's `/kb_status`, `/kb_refresh`, the console).

Channels and the console use this and never `ingest` itself; the texts are `ingest.admin`'s, the same the
CLI prints. For the web console: versions as data, a refresh in the background with its progress, rollback,
and uploads — a file is checked on its own (it must load and have text) before it joins
`knowledge.uploads_dir`, so a bad file is refused with its name and why and the live index never sees it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.smoke import serving_check
from common.settings import Settings
from ingest import admin
from ingest.errors import RefreshError

UPLOAD_TYPES = (".md", ".pdf", ".docx")
MAX_UPLOAD = 10 * 1024 * 1024


@dataclass
class BackgroundJob:
    """One job in a background thread (a refresh, an eval run): how far it got, and how it ended."""

    by: str
    stage: str = "loading"  # loading → embedding → done | failed
    done: int = 0
    total: int = 0
    result: str = ""
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"by": self.by, "stage": self.stage, "done": self.done, "total": self.total, "result": self.result,
                "errors": self.errors, "running": self.stage not in ("done", "failed")}


class UploadRefused(ValueError):
    """A file that cannot join the knowledge base; the message names it and says why."""


class KbAdmin:
    def __init__(self, cfg: Settings) -> None:
        self.cfg = cfg
        self.job: BackgroundJob | None = None
        self._lock = threading.Lock()

    def status(self) -> dict[str, Any]:
        return admin.status(self.cfg)

    def status_text(self, limit: int = 5) -> str:
        return admin.status_text(admin.status(self.cfg), limit)

    def refresh_text(self, by: str) -> str:
        try:
            return admin.refresh_text(admin.refresh(self.cfg, by=by, candidate_check=serving_check))
        except RefreshError as exc:
            return f"refresh failed, the live version still serves: {exc}"

    # -- the console: refresh in the background, rollback, upload ------------------------------------------
    def start_refresh(self, by: str) -> BackgroundJob:
        """Start a refresh in a thread (or return the one running); follow it with `self.job`."""
        with self._lock:
            if self.job is not None and self.job.as_json()["running"]:
                return self.job
            job = self.job = BackgroundJob(by)
        threading.Thread(target=self._run, args=(job,), name="qiuxue-kb-refresh", daemon=True).start()
        return job

    def _run(self, job: BackgroundJob) -> None:
        def progress(done: int, total: int) -> None:
            job.stage, job.done, job.total = "embedding", done, total

        try:
            report = admin.refresh(self.cfg, by=job.by, candidate_check=serving_check, on_progress=progress)
            job.result, job.errors, job.stage = admin.refresh_text(report), list(report.errors), "done"
        except Exception as exc:  # the live version still serves; say why
            job.result, job.stage = f"refresh failed, the live version still serves: {exc}", "failed"

    def rollback_text(self, to: str, by: str) -> str:
        try:
            return admin.rollback_text(admin.rollback(self.cfg, to or None, by))
        except RefreshError as exc:
            return f"rollback refused: {exc}"

    def upload(self, filename: str, data: bytes) -> Path:
        """Check one uploaded policy document and keep it in `knowledge.uploads_dir`; `UploadRefused` if bad."""
        name = Path(filename or "").name
        safe = re.sub(r"[^\w.\-]+", "_", name).lstrip(".")
        suffix = Path(safe).suffix.lower()
        if not safe or suffix not in UPLOAD_TYPES:
            raise UploadRefused(f"{name or '(no name)'}: only {', '.join(UPLOAD_TYPES)} files are accepted")
        if not data:
            raise UploadRefused(f"{name}: the file is empty")
        if len(data) > MAX_UPLOAD:
            raise UploadRefused(f"{name}: larger than {MAX_UPLOAD // (1024 * 1024)} MB")
        with tempfile.TemporaryDirectory(dir=self.cfg.data_path) as tmp:
            candidate = Path(tmp) / safe
            candidate.write_bytes(data)
            problems = admin.check_file(candidate)
            if problems:
                raise UploadRefused(f"{name}: {'; '.join(p.replace(str(candidate), name) for p in problems)}")
            folder = self.cfg.path(self.cfg.knowledge.uploads_dir)
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / safe
            shutil.move(str(candidate), target)
        return target

    def ensure_index(self, progress: bool = False) -> bool:
        """Build the index on first use (e.g. the terminal chat's first run); False if that failed."""
        if admin.status(self.cfg)["live"] is not None:
            return True
        print("building the knowledge-base index (first run)…", file=sys.stderr)
        try:
            admin.refresh(self.cfg, progress=progress, candidate_check=serving_check)
        except RefreshError as exc:
            print(f"cannot build the index: {exc}", file=sys.stderr)
            return False
        return True


def cmd_ingest(cfg: Settings, args: argparse.Namespace) -> int:
    """`qiuxue ingest`: ingest's command, with the bot's serving check a new version must pass."""
    from ingest.cli import cmd_ingest as build

    args.candidate_check = serving_check
    return build(cfg, args)
