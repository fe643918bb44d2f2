"""Knowledge-base administration, one implementation for every front end (CLI, Telegram, web console).

`status` / `refresh` / `rollback` and the one way each result is written for a person
(`status_text`, `refresh_text`, `rollback_text`). Front ends in `bot/` reach it through
`bot.kb_admin.KbAdmin`; `qiuxue ingest` and `qiuxue kb …` print exactly these texts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.db import open_database
from common.settings import Settings
from ingest.versions import KbVersion, all_versions, live_version

if TYPE_CHECKING:
    from ingest.refresh import RefreshReport

STAT_KEYS = ("added", "updated", "removed", "unchanged")


def status(cfg: Settings) -> dict[str, Any]:
    """The live version and every version (newest first) with its counts, as JSON-ready data."""
    sessions = open_database(cfg)
    live = live_version(sessions)
    rows = [{
        "version": v.version, "live": bool(live and v.version == live.version), "status": v.status,
        "documents": v.documents, "chunks": v.chunks, "embedder": v.embedder,
        "created_at": v.created_at.isoformat(timespec="seconds") if v.created_at else None,
        "created_by": v.created_by, **{k: (v.stats or {}).get(k, 0) for k in STAT_KEYS},
        "errors": (v.stats or {}).get("errors", []),
    } for v in all_versions(sessions)]
    return {"live": live.version if live else None, "versions": rows}


def refresh(cfg: Settings, **options: Any) -> RefreshReport:
    """Build a new version and switch to it (`ingest.refresh.refresh`); loads the embedder and Chroma."""
    from ingest import refresh as building  # the heavy part: only commands that build pay for it

    return building.refresh(cfg, **options)


def rollback(cfg: Settings, to: str | None = None, by: str | None = None) -> KbVersion:
    from ingest import refresh as building

    return building.rollback(cfg, to, by)


def check_file(path: Path) -> list[str]:
    """Why a single knowledge file cannot be indexed (empty: it loads and has text)."""
    from ingest.loaders import load_paths

    docs, errors = load_paths([path])
    if errors:
        return [e.reason for e in errors]
    return [] if docs else ["no readable text"]


def status_text(data: dict[str, Any], limit: int | None = None) -> str:
    rows = data["versions"][:limit]
    if not rows:
        return "no index yet: run `qiuxue ingest`"
    lines = [f"{'':2}{'version':<24}{'status':<10}{'docs':>6}{'chunks':>8}  {'+/~/-/=':<14}{'when':<21}by"]
    for r in rows:
        delta = "/".join(str(r[k]) for k in STAT_KEYS)
        lines.append(f"{'*' if r['live'] else '':2}{r['version']:<24}{r['status']:<10}{r['documents']:>6}"
                     f"{r['chunks']:>8}  {delta:<14}{(r['created_at'] or '')[:19]:<21}{r['created_by']}")
    lines.append(f"live: {data['live'] or 'none'}; * = live; +/~/-/= = added/updated/removed/unchanged documents")
    return "\n".join(lines)


def refresh_text(report: RefreshReport) -> str:
    state = "now live" if report.switched else "unchanged, still live"
    lines = [f"{report.version} {state}: {report.documents} documents, {report.chunks} chunks "
             f"(added {report.added}, updated {report.updated}, removed {report.removed}, "
             f"unchanged {report.unchanged})"]
    lines += [f"cannot read {error}" for error in report.errors]
    return "\n".join(lines)


def rollback_text(target: KbVersion) -> str:
    return f"{target.version} is live again ({target.documents} documents, {target.chunks} chunks)"


__all__ = ["check_file", "refresh", "refresh_text", "rollback", "rollback_text", "status", "status_text"]
