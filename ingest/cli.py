"""`qiuxue ingest` and `qiuxue kb status|rollback`: the admin's commands for the knowledge-base index
(arguments in `bot/commands.py`).

Exit codes: 0 done; 1 the refresh failed (the live version still serves); 3 done, but some files
could not be read (each named on stderr; their previous content, if any, was kept).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.db import open_database
from common.settings import Config
from ingest import admin
from ingest.errors import RefreshError
from ingest.versions import live_version

EXIT_FAILED, EXIT_PARTIAL = 1, 3


def cmd_kb_validate(cfg: Config, args: argparse.Namespace) -> int:
    # Only this command needs the schema's models and the loaders: `kb status` starts without them.
    from ingest.refresh import knowledge_dirs, knowledge_paths
    from ingest.validate import validate_paths

    dirs = knowledge_dirs(cfg)
    paths = [Path(p).resolve() for p in args.paths] if args.paths else [
        *knowledge_paths(cfg, None), *(d for d in (dirs.rules, dirs.guides, dirs.dictionary) if d)]
    checked, problems = validate_paths(paths, dirs)
    if args.json:
        print(json.dumps({"checked": checked, "ok": not problems, "problems": [p.as_json() for p in problems]},
                         ensure_ascii=False))
    else:
        for problem in problems:
            print(f"✗ {problem}")
        print(f"{checked} files checked, {len(problems)} with problems")
    return EXIT_FAILED if problems else 0


def cmd_ingest(cfg: Config, args: argparse.Namespace) -> int:
    if args.if_missing and live_version(open_database(cfg)) is not None:
        if not args.json:
            print("index present; nothing to do (qiuxue ingest refreshes it)")
        return 0
    try:
        report = admin.refresh(cfg, paths=args.paths or None, rebuild=args.rebuild, by=args.by, progress=not args.json,
                              candidate_check=getattr(args, "candidate_check", None))
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
