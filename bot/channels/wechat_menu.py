"""`qiuxue wechat menu [--apply]`: the Official Account's menu — 我能申请吗 / 怎么申请 / 转人工.

Each entry is a `click` button whose key the channel maps to a command (`wechat.MENU`: check, apply,
human), so a tap works like typing it. Without `--apply` the menu is printed; with it, it is set through
WeChat's `POST {api_base_url}/cgi-bin/menu/create` (credentials from WECHAT_APP_ID / WECHAT_APP_SECRET).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bot.channels.base import DeliveryFailure
from bot.channels.wechat import MENU
from bot.channels.wechat_api import WechatApi, credentials_from_env
from bot.i18n import t
from common.db import open_database
from common.settings import Settings


def menu(lang: str = "zh") -> dict[str, Any]:
    return {"button": [{"type": "click", "name": t(f"wechat_menu_{key}", lang), "key": key} for key in MENU]}


def cmd_menu(cfg: Settings, args: argparse.Namespace) -> int:
    body = menu()
    print(json.dumps(body, ensure_ascii=False, indent=1))
    if not args.apply:
        return 0
    secrets = credentials_from_env()
    api = WechatApi(cfg.wechat.api_base_url, secrets["WECHAT_APP_ID"], secrets["WECHAT_APP_SECRET"],
                    open_database(cfg), cfg.wechat.timeout_seconds)
    try:
        api.call("menu/create", lambda: api.menu.create(body))
    except DeliveryFailure as exc:
        print(f"WeChat refused the menu: {exc}", file=sys.stderr)
        return 1
    print("menu set", file=sys.stderr)
    return 0
