"""Mask ID-card and phone numbers before anything is logged or stored in a transcript."""

from __future__ import annotations

import logging
import re

ID_CARD = re.compile(r"(?<![0-9])([1-9][0-9]{5})(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}([0-9Xx])(?![0-9])")
MOBILE = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?(1[3-9][0-9])[- ]?([0-9]{4})[- ]?([0-9]{4})(?![0-9])")


def redact(text: str) -> str:
    """'110101199003071234' → '110101********1234'-style masks; mobile numbers keep 3+4 digits."""
    text = ID_CARD.sub(lambda m: f"{m.group(1)}********{m.group(0)[-4:]}", text)
    return MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


class RedactingFormatter(logging.Formatter):
    """Formats a log record, traceback included, then masks ID-card and phone numbers in it."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def install_log_redaction(root: logging.Logger | None = None) -> None:
    """Make every handler of the root logger redact what it writes."""
    for handler in (root or logging.getLogger()).handlers:
        fmt = handler.formatter
        handler.setFormatter(RedactingFormatter(fmt._fmt if fmt else None, fmt.datefmt if fmt else None))
