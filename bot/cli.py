"""The `qiuxue` console script: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import gc
import logging
import sys

from bot.commands import add_all


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qiuxue", description="求学圆梦助手 — grounded answers for workers")
    parser.add_argument("--config", help="config file (default: ./config.yaml or $QIUXUE_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    add_all(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # --help ends here, before settings or models load
    # Start-up is mostly imports: hundreds of thousands of long-lived objects that the cyclic garbage
    # collector would scan again and again (~6 % of a short command's time). Collect nothing until the
    # command's modules are loaded, then freeze what start-up made out of later collections.
    gc.disable()
    try:
        from bot.core.redact import install_log_redaction
        from common.settings import load_config

        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        install_log_redaction()  # logs never hold a worker's ID-card or phone number in clear
        cfg = load_config(args.config)
        command = args.func.load()
    finally:
        gc.enable()
    gc.freeze()
    return int(command(cfg, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
