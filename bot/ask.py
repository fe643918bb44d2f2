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
import sys

from bot.answering import Answerer
from common.settings import Config


def cmd_ask(cfg: Config, args: argparse.Namespace) -> int:
    answerer = Answerer(cfg)
    question = " ".join(args.question)
    if args.json and question == "-":
        return _stream(answerer, args.mode)
    answer = answerer.ask(question, args.region, args.mode)
    if args.json:
        print(json.dumps(answer.as_json(), ensure_ascii=False))
    else:
        print(answer.answer)
    return 0


def _stream(answerer: Answerer, mode: str) -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("each line must be a JSON object")
            question, region = str(request.get("question") or ""), request.get("region")
        except ValueError as exc:
            print(json.dumps({"error": f"bad input line: {exc}"}, ensure_ascii=False), flush=True)
            continue
        answer = answerer.ask(question, str(region) if region else None, mode)
        print(json.dumps(answer.as_json(), ensure_ascii=False), flush=True)
    return 0
