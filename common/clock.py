"""The one clock: timezone-aware UTC now, for every timestamp the project stores."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """A stored timestamp as timezone-aware UTC (SQLite returns naive datetimes)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
