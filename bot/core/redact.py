"""Mask ID-card, mobile and bank-card numbers (and the bot token) before anything is logged or stored.

A "number" is a run of digits — ASCII or full-width — with at most one separator (space, dash,
ideographic space) between digits, so `4401 0619 9001 0112 34`, `138-1234-5678` and
`１３８１２３４５６７８` are all seen. Each run is classified by its digits:
- ID card: 18 digits (the last may be X) or the old 15, with a plausible birth date → 6 + ******** + 4;
- mobile: 11 digits 1[3-9]…, optionally after 86 → 3 + **** + 4;
- bank card: 16–19 digits from a card network (first digit 3–6 or 9) passing the Luhn check → 4 + *… + 4.
A run that is none of these is split at its separators and the parts tried again, so a phone
number followed by a year is still caught. Other numbers (amounts, years, months) stay.

Logs: `install_log_redaction` masks every record as it is created (message and arguments, any
logger, any level, whichever handler prints it) and every handler's output (tracebacks), and
replaces Telegram bot tokens (`bot<id>:<secret>` in request URLs, and the value of
TELEGRAM_BOT_TOKEN wherever it appears) with `<token>`; so are the WeChat secrets (WECHAT_APP_SECRET,
WECHAT_TOKEN, WECHAT_AES_KEY) and any `access_token=` / `secret=` query value (WeChat API URLs).
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata

DIGIT = "[0-9\uff10-\uff19]"
SEP = "[ \\-\u2010-\u2014\uff0d\u3000]"
CHECK_X = "[Xx\uff38\uff58]"
RUN = re.compile(rf"(?<![0-9\uff10-\uff19]){DIGIT}(?:{SEP}?{DIGIT}){{10,}}(?:{SEP}?{CHECK_X})?(?![0-9\uff10-\uff19])")
SPLIT = re.compile(rf"({SEP})")
BIRTH_18 = re.compile(r"^[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9X]$")
BIRTH_15 = re.compile(r"^[1-9][0-9]{5}[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}$")
MOBILE = re.compile(r"^(86)?(1[3-9][0-9])[0-9]{4}([0-9]{4})$")
CARD_FIRST_DIGITS = "34569"  # card networks: 3 JCB/Amex, 4 Visa, 5 Mastercard, 6 UnionPay, 9 domestic
TOKEN_IN_URL = re.compile(r"bot[0-9]{5,}:[A-Za-z0-9_-]{20,}")
TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
SECRET_ENVS = (TOKEN_ENV, "WECHAT_APP_SECRET", "WECHAT_TOKEN", "WECHAT_AES_KEY")
SECRET_IN_QUERY = re.compile(r"((?:access_token|secret)=)[^&\s\"'<>]+")
TOKEN_MASK = "<token>"


def _digits(run: str) -> str:
    """The run's digits as ASCII (full-width folded, separators dropped, x → X)."""
    return "".join(unicodedata.normalize("NFKC", ch).upper() for ch in run if not SPLIT.fullmatch(ch))


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _mask_digits(digits: str) -> str | None:
    """The masked form of one number, or None if it is no ID-card, mobile or bank-card number."""
    if BIRTH_18.match(digits) or BIRTH_15.match(digits):
        return f"{digits[:6]}********{digits[-4:]}"
    if m := MOBILE.match(digits):
        return f"{m.group(1) or ''}{m.group(2)}****{m.group(3)}"
    if digits.isdigit() and 16 <= len(digits) <= 19 and digits[0] in CARD_FIRST_DIGITS and luhn_ok(digits):
        return f"{digits[:4]}{'*' * (len(digits) - 8)}{digits[-4:]}"
    return None


def _mask_run(run: str) -> str:
    """Mask the longest leading group of separator-joined parts that is a number we hide; recurse."""
    parts = SPLIT.split(run)  # digits, sep, digits, sep, …
    for end in range(len(parts), 0, -2):
        masked = _mask_digits(_digits("".join(parts[:end])))
        if masked is not None:
            rest = "".join(parts[end:])
            return masked + (rest[:1] + _mask_run(rest[1:]) if rest else "")
    if len(parts) == 1:
        return run
    return parts[0] + parts[1] + _mask_run("".join(parts[2:]))


def redact(text: str) -> str:
    """ID-card, mobile and bank-card numbers in `text` masked; everything else unchanged."""
    return RUN.sub(lambda m: _mask_run(m.group(0)), text)


def contains_pii(text: str) -> bool:
    """True if `text` still holds an ID-card, mobile or bank-card number in clear."""
    return redact(text) != text


def redact_secrets(text: str) -> str:
    """Bot tokens, WeChat keys (their configured values) and API tokens in URLs replaced by `<token>`."""
    for name in SECRET_ENVS:
        token = os.environ.get(name, "")
        if len(token) >= 8 and token in text:
            text = text.replace(token, TOKEN_MASK)
    text = SECRET_IN_QUERY.sub(lambda m: m.group(1) + TOKEN_MASK, text)
    return TOKEN_IN_URL.sub("bot" + TOKEN_MASK, text)


def redact_log_text(text: str) -> str:
    return redact_secrets(redact(text))


class RedactingFormatter(logging.Formatter):
    """Formats a log record, traceback included, then masks numbers and tokens in it."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_log_text(super().format(record))


_base_factory = logging.getLogRecordFactory()


def _redacting_record(*args, **kwargs) -> logging.LogRecord:  # type: ignore[no-untyped-def]
    """Every log record, as created: its message (arguments merged in) masked."""
    record = _base_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: leave it for logging to report
        return record
    record.msg, record.args = redact_log_text(message), None
    return record


def install_log_redaction(root: logging.Logger | None = None) -> None:
    """Mask every log record at creation, and make every handler of the root logger mask its output."""
    logging.setLogRecordFactory(_redacting_record)
    for handler in (root or logging.getLogger()).handlers:
        fmt = handler.formatter
        if not isinstance(fmt, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(fmt._fmt if fmt else None, fmt.datefmt if fmt else None))
