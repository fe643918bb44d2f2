"""`qiuxue ingest` and `qiuxue kb status|rollback`: the admin's commands for the knowledge-base index
(arguments in `bot/commands.py`).

Exit codes: 0 done; 1 the refresh failed (the live version still serves); 3 done, but some files
could not be read (each named on stderr; their previous content, if any, was kept).
"""

from __future__ import annotations

import argparse
import json
import sys

from common.db import open_database
from common.settings import Config
from ingest import admin
from ingest.errors import RefreshError
from ingest.versions import live_version

EXIT_FAILED, EXIT_PARTIAL = 1, 3


def cmd_ingest(cfg: Config, args: argparse.Namespace) -> int:
    if args.if_missing and live_version(open_database(cfg)) is not None:
        if not args.json:
            print("index present; nothing to do (qiuxue ingest refreshes it)")
        return 0
    try:
        report = admin.refresh(cfg, paths=args.paths or None, rebuild=args.rebuild, by=args.by, progress=not args.json)
    except RefreshError as exc:
        print(f"ingest failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for error in report.errors:
        print(f"cannot read {error}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        print(admin.refresh_text(report).splitlines()[0])
    return EXIT_PARTIAL if report.errors else 0


def cmd_kb_status(cfg: Config, args: argparse.Namespace) -> int:
    data = admin.status(cfg)
    print(json.dumps(data, ensure_ascii=False) if args.json else admin.status_text(data))
    return 0


def cmd_kb_rollback(cfg: Config, args: argparse.Namespace) -> int:
    try:
        target = admin.rollback(cfg, args.to, args.by)
    except RefreshError as exc:
        print(f"rollback failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(admin.rollback_text(target))
    return 0
