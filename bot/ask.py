"""`qiuxue ask`: answer one question, or a stream of JSON lines, loading models and the index once.

Contract (other tools drive it):
  qiuxue ask [--region R] [--json] QUESTION
  qiuxue ask --json -      # stdin: {"question": "...", "region": "广东" | null} per line
Each answer: {"question", "answer", "action", "region", "sources": [{"id","title","region","ref"}],
"latency_ms", "related": [{"id","question"}]}; action is "answer" (grounded, ≥ 1 source) or "no_answer" (helpdesk offered).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from bot.answering import Answerer
from bot.ask_request import BadLine, parse_request
from bot.core.normalize import storable
from common.settings import Config

log = logging.getLogger(__name__)
LINE_SEPARATORS = ("\u0085", "\u2028", "\u2029")




def cmd_ask(cfg: Config, args: argparse.Namespace) -> int:
    answerer = Answerer(cfg)
    question = " ".join(args.question)
    if args.json and question == "-":
        return _stream(answerer, args.mode)
    answer = answerer.ask(storable(question), storable(args.region) or None, args.mode)
    if args.json:
        print(json.dumps(answer.as_json(), ensure_ascii=False))
    else:
        print(answer.answer)
    return 0


def _stream(answerer: Answerer, mode: str) -> int:
    """One output line per input line, whatever the line holds; never stops early."""
    source = getattr(sys.stdin, "buffer", sys.stdin)
    for number, raw in enumerate(source, 1):
        try:
            request = parse_request(raw)
            answer = answerer.ask(request.question, request.region, mode).as_json()
        except BadLine as exc:
            answer = {"error": f"line {number}: {exc}"}
        except Exception as exc:  # one failing question must not lose the lines after it
            log.exception("ask --json - failed on line %d", number)
            answer = {"error": f"line {number}: could not answer ({type(exc).__name__})"}
        _emit(answer)
    return 0


def _emit(data: dict[str, Any]) -> None:
    """Print one JSON line that is always valid UTF-8 and has no line break of any kind inside."""
    try:
        line = json.dumps(data, ensure_ascii=False)
        line.encode("utf-8")
    except (UnicodeEncodeError, ValueError, RecursionError):
        line = json.dumps(data, ensure_ascii=True, default=str)
    for separator in LINE_SEPARATORS:  # JSON leaves them raw, but line readers split on them
        line = line.replace(separator, f"\\u{ord(separator):04x}")
    print(line, flush=True)
