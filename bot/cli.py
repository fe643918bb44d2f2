"""The `qiuxue` console script: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import logging
import sys

from bot.ask import add_commands as add_ask_commands
from bot.channels.telegram import add_commands as add_serve_commands
from bot.channels.terminal import add_commands as add_chat_commands
from bot.check import add_commands as add_check_commands
from bot.config import load_config
from bot.core.redact import install_log_redaction
from bot.evaluation import add_commands as add_eval_commands
from bot.helpdesk.admin import add_commands as add_helpdesk_commands
from bot.kb_lint import add_commands as add_lint_commands
from ingest.cli import add_commands as add_ingest_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qiuxue", description="求学圆梦助手 — grounded answers for workers")
    parser.add_argument("--config", help="config file (default: ./config.yaml or $QIUXUE_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    kb_sub = add_ingest_commands(sub)
    add_helpdesk_commands(sub, kb_sub)
    add_lint_commands(kb_sub)
    add_ask_commands(sub)
    add_eval_commands(sub)
    add_check_commands(sub)
    add_chat_commands(sub)
    add_serve_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()  # logs never hold a worker's ID-card or phone number in clear
    cfg = load_config(args.config)
    return int(args.func(cfg, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
