"""The knowledge-base admin service for chat front ends (Telegram's `/kb_status`, `/kb_refresh`, the console).

Channels use this and never `ingest` itself; the texts are `ingest.admin`'s, the same the CLI prints.
"""

from __future__ import annotations

import argparse
import sys

from bot.smoke import serving_check
from common.settings import Settings
from ingest import admin
from ingest.errors import RefreshError


class KbAdmin:
    def __init__(self, cfg: Settings) -> None:
        self.cfg = cfg

    def status_text(self, limit: int = 5) -> str:
        return admin.status_text(admin.status(self.cfg), limit)

    def refresh_text(self, by: str) -> str:
        try:
            return admin.refresh_text(admin.refresh(self.cfg, by=by, candidate_check=serving_check))
        except RefreshError as exc:
            return f"refresh failed, the live version still serves: {exc}"

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
