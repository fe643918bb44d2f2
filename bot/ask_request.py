"""One line of `qiuxue ask --json -` input, decoded and checked: bytes in, a question or `BadLine` out.

A line must be UTF-8, a JSON object, with a string `question` (an empty one gets the "empty question" reply) and an optional string
(or null) `region`. Every other line — invalid bytes, lone surrogates, JSON nested too deep,
arrays, numbers — raises `BadLine` with a message that says what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bot.core.normalize import has_lone_surrogate, storable

MAX_LINE_BYTES = 1_000_000


class BadLine(ValueError):
    """An input line that cannot be a question; the message says why."""


@dataclass(frozen=True)
class AskRequest:
    question: str
    region: str | None


def _text(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    if len(raw) > MAX_LINE_BYTES:
        raise BadLine(f"line longer than {MAX_LINE_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadLine(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None


def _string(request: dict, key: str) -> str | None:
    value = request.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadLine(f'"{key}" must be a string, got {type(value).__name__}')
    if has_lone_surrogate(value):
        raise BadLine(f'"{key}" contains a lone surrogate (not valid Unicode text)')
    return storable(value)


def parse_request(raw: bytes | str) -> AskRequest:
    """The question and region of one input line; raises BadLine for anything else."""
    text = _text(raw).strip().lstrip("\ufeff")
    if not text:
        raise BadLine("empty line (expected a JSON object)")
    try:
        request = json.loads(text)
    except RecursionError:
        raise BadLine("JSON nested too deeply") from None
    except ValueError as exc:
        raise BadLine(f"not JSON ({exc})") from None
    if not isinstance(request, dict):
        raise BadLine(f"each line must be a JSON object, got {type(request).__name__}")
    question = _string(request, "question")
    if question is None:
        raise BadLine('missing "question"')
    return AskRequest(question, _string(request, "region") or None)
