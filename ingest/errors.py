"""Errors of the ingest layer that callers catch without loading the heavy refresh machinery."""

from __future__ import annotations


class RefreshError(RuntimeError):
    """The new version could not be built or failed its smoke check; the live one still serves."""
