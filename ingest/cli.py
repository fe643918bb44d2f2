"""`qiuxue ingest` and `qiuxue kb …`: the admin's commands for the knowledge-base index.

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
from ingest.refresh import RefreshError, refresh, rollback
from ingest.versions import live_version

EXIT_FAILED, EXIT_PARTIAL = 1, 3


def add_commands(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Adds `ingest` and `kb …`; returns the `kb` subcommands so others can add theirs."""
    p = sub.add_parser("ingest", help="build a new index version from the knowledge base and switch to it")
    p.add_argument("paths", nargs="*", help="files or folders (default: knowledge.paths in config.yaml)")
    p.add_argument("--rebuild", action="store_true", help="re-embed everything, ignoring the live version")
    p.add_argument("--if-missing", action="store_true", help="do nothing if a live version exists")
    p.add_argument("--by", help="who is refreshing (default: $QIUXUE_ACTOR or the login name)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the counts")
    p.set_defaults(func=cmd_ingest)

    kb = sub.add_parser("kb", help="index versions: status, rollback")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    st = kb_sub.add_parser("status", help="versions, documents, chunks, when and by whom")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_kb_status)
    rb = kb_sub.add_parser("rollback", help="make the previous complete version live again")
    rb.add_argument("--to", help="a specific version (see kb status)")
    rb.add_argument("--by")
    rb.set_defaults(func=cmd_kb_rollback)
    return kb_sub


def cmd_ingest(cfg: Config, args: argparse.Namespace) -> int:
    if args.if_missing and live_version(open_database(cfg)) is not None:
        if not args.json:
            print("index present; nothing to do (qiuxue ingest refreshes it)")
        return 0
    try:
        report = refresh(cfg, args.paths or None, rebuild=args.rebuild, by=args.by, progress=not args.json)
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
        target = rollback(cfg, args.to, args.by)
    except RefreshError as exc:
        print(f"rollback failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(admin.rollback_text(target))
    return 0
