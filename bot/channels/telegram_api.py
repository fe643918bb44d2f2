"""Telegram Bot API plumbing shared by the worker and staff sides: the `Bot`, MarkdownV2 splitting,
inline keyboards, and the one retry policy every call goes through (`with_retry`).

The policy: a 429 is waited out as Telegram says (`retry_after`) when that is short, else handed to the
outbox with its `retry_after` so the row is not tried earlier; a timeout or network error is retried
with bounded exponential backoff (0.5, 1, 2 s); after `MAX_ATTEMPTS` it is a `TransientFailure` (the
outbox retries the row later with its own backoff and, after `delivery.max_attempts`, records it
failed with the reason); Telegram's refusals are a `PermanentFailure`, recorded at once. A timed-out
send may have reached Telegram (the reply is then shown twice): a lost answer is the worse error.
Why not PTB's `AIORateLimiter`: it retries 429s only, not timeouts, and knows nothing of the outbox."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import MessageLimit
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.helpers import escape_markdown
from telegram.request import HTTPXRequest

from bot.channels.base import PermanentFailure, TransientFailure
from bot.core.messages import Outgoing
from common.settings import Settings

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 4
MAX_INLINE_WAIT = 30.0  # a longer RetryAfter goes back to the outbox's backoff instead of blocking


def split_message(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """MarkdownV2-escaped parts of `text`, each at most `limit` characters once escaped."""
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(escape_markdown(line, version=2)) > limit:  # one huge line: cut it
            cut = limit // 2
            parts.extend([escape_markdown(current, version=2)] if current else [])
            current = ""
            parts.append(escape_markdown(line[:cut], version=2))
            line = line[cut:]
        if len(escape_markdown(current + line, version=2)) > limit:
            parts.append(escape_markdown(current, version=2))
            current = ""
        current += line
    if current or not parts:
        parts.append(escape_markdown(current, version=2))
    return [p for p in parts if p.strip()] or [escape_markdown(text or " ", version=2)]


def keyboard(reply: Outgoing) -> InlineKeyboardMarkup | None:
    rows = [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in reply.buttons]
    if reply.link:
        rows.append([InlineKeyboardButton("🔗", url=reply.link)])
    return InlineKeyboardMarkup(rows) if rows else None


def _seconds(retry_after: Any) -> float:
    return float(retry_after.total_seconds()) if hasattr(retry_after, "total_seconds") else float(retry_after)


async def with_retry(call: Callable[[], Awaitable[Any]], what: str) -> Any:
    """A Bot API call, 429s waited out and network errors retried; Telegram's refusals become
    `PermanentFailure`, errors that outlast the retries `TransientFailure`."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return await call()
        except RetryAfter as exc:
            wait = _seconds(exc.retry_after)
            if wait > MAX_INLINE_WAIT or attempt == MAX_ATTEMPTS:
                raise TransientFailure(f"{what}: rate limited for {wait:.0f}s", retry_after=wait) from exc
            log.warning("%s: rate limited by Telegram, retrying in %.1fs", what, wait)
            await asyncio.sleep(wait)
        except (BadRequest, Forbidden) as exc:
            raise PermanentFailure(f"{what}: {exc.message}") from exc
        except (TimedOut, NetworkError) as exc:
            if attempt == MAX_ATTEMPTS:
                raise TransientFailure(f"{what}: {type(exc).__name__}") from exc
            log.warning("%s: %s, retry %d", what, type(exc).__name__, attempt)
            await asyncio.sleep(0.5 * 2 ** (attempt - 1))
        except TelegramError as exc:
            raise PermanentFailure(f"{what}: {exc.message}") from exc
    raise TransientFailure(what)


def make_bot(cfg: Settings, token: str) -> Bot:
    base = cfg.telegram.base_url.rstrip("/")
    file_base = base.replace("/bot", "/file/bot") if base.endswith("/bot") else base + "/file"
    timeout = cfg.telegram.call_timeout_seconds
    request = HTTPXRequest(connection_pool_size=64, pool_timeout=timeout, connect_timeout=timeout,
                           read_timeout=timeout, write_timeout=timeout)
    return Bot(token, base_url=base, base_file_url=file_base, request=request,
               get_updates_request=HTTPXRequest(read_timeout=cfg.telegram.poll_timeout_seconds + 10))


def token_from_env() -> str:
    token = os.environ.get("TELEGRAM_BOT_TOKEN", "").strip()
    if not token:
        raise SystemExit("TELEGRAM_BOT_TOKEN is not set (the token never goes in config.yaml)")
    return token


def webhook_secret_from_env() -> str:
    secret = os.environ.get("TELEGRAM_WEBHOOK_SECRET", "").strip()
    if not secret:
        raise SystemExit("telegram.mode is webhook but TELEGRAM_WEBHOOK_SECRET is not set: refusing to accept "
                         "unsigned updates (set a secret of 1–256 characters A-Z a-z 0-9 _ -)")
    return secret
