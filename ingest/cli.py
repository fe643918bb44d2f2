"""`qiuxue ingest` and `qiuxue kb …`: the admin's commands for the knowledge-base index.

Exit codes: 0 done; 1 the refresh failed (the live version still serves); 3 done, but some files
could not be read (each named on stderr; their previous content, if any, was kept).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bot.config import Config
from bot.db import open_database
from ingest.refresh import CandidateCheck, RefreshError, knowledge_dirs, knowledge_paths, refresh, rollback
from ingest.validate import validate_paths
from ingest.versions import all_versions, live_version

EXIT_FAILED, EXIT_PARTIAL = 1, 3


def add_commands(sub: argparse._SubParsersAction,
                 candidate_check: CandidateCheck | None = None) -> argparse._SubParsersAction:
    """Adds `ingest` and `kb …`; returns the `kb` subcommands so others can add theirs.

    `candidate_check` is the serving check a new version must pass before it goes live.
    """
    p = sub.add_parser("ingest", help="build a new index version from the knowledge base and switch to it")
    p.add_argument("paths", nargs="*", help="files or folders (default: knowledge.paths in config.yaml)")
    p.add_argument("--rebuild", action="store_true", help="re-embed everything, ignoring the live version")
    p.add_argument("--if-missing", action="store_true", help="do nothing if a live version exists")
    p.add_argument("--by", help="who is refreshing (default: $QIUXUE_ACTOR or the login name)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the counts")
    p.set_defaults(func=cmd_ingest, candidate_check=candidate_check)

    kb = sub.add_parser("kb", help="index versions: status, rollback")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    st = kb_sub.add_parser("status", help="versions, documents, chunks, when and by whom")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_kb_status)
    rb = kb_sub.add_parser("rollback", help="make the previous complete version live again")
    rb.add_argument("--to", help="a specific version (see kb status)")
    rb.add_argument("--by")
    rb.set_defaults(func=cmd_kb_rollback)
    va = kb_sub.add_parser("validate", help="check knowledge files against their declared shapes (no indexing)")
    va.add_argument("paths", nargs="*", help="files or folders (default: the whole configured knowledge base)")
    va.add_argument("--json", action="store_true")
    va.set_defaults(func=cmd_kb_validate)
    return kb_sub


def cmd_kb_validate(cfg: Config, args: argparse.Namespace) -> int:
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
        report = refresh(cfg, args.paths or None, rebuild=args.rebuild, by=args.by, progress=not args.json,
                         candidate_check=args.candidate_check)
    except RefreshError as exc:
        print(f"ingest failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for error in report.errors:
        print(f"cannot read {error}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        state = "now live" if report.switched else "unchanged, still live"
        print(f"{report.version} {state}: {report.documents} documents, {report.chunks} chunks "
              f"(added {report.added}, updated {report.updated}, removed {report.removed}, "
              f"unchanged {report.unchanged})")
    return EXIT_PARTIAL if report.errors else 0


def cmd_kb_status(cfg: Config, args: argparse.Namespace) -> int:
    sessions = open_database(cfg)
    live = live_version(sessions)
    rows = [{
        "version": v.version, "live": bool(live and v.version == live.version), "status": v.status,
        "documents": v.documents, "chunks": v.chunks, "embedder": v.embedder,
        "created_at": v.created_at.isoformat(timespec="seconds") if v.created_at else None,
        "created_by": v.created_by, **{k: (v.stats or {}).get(k, 0)
                                       for k in ("added", "updated", "removed", "unchanged")},
        "errors": (v.stats or {}).get("errors", []),
    } for v in all_versions(sessions)]
    if args.json:
        print(json.dumps({"live": live.version if live else None, "versions": rows}, ensure_ascii=False))
        return 0
    if not rows:
        print("no index yet: run `qiuxue ingest`")
        return 0
    print(f"{'':2}{'version':<24}{'status':<10}{'docs':>6}{'chunks':>8}  {'+/~/-/=':<14}{'when':<21}by")
    for r in rows:
        delta = f"{r['added']}/{r['updated']}/{r['removed']}/{r['unchanged']}"
        print(f"{'*' if r['live'] else '':2}{r['version']:<24}{r['status']:<10}{r['documents']:>6}"
              f"{r['chunks']:>8}  {delta:<14}{(r['created_at'] or '')[:19]:<21}{r['created_by']}")
    print("* = live; +/~/-/= = added/updated/removed/unchanged documents")
    return 0


def cmd_kb_rollback(cfg: Config, args: argparse.Namespace) -> int:
    try:
        target = rollback(cfg, args.to, args.by)
    except RefreshError as exc:
        print(f"rollback failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{target.version} is live again ({target.documents} documents, {target.chunks} chunks)")
    return 0
