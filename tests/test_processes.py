"""Several `qiuxue serve` processes on one PostgreSQL: real OS processes, Telegram in webhook mode against the
fake Bot API, each update POSTed to one process or the other as a load balancer would.

- the flood limit is one limit for the worker, not one per process;
- a worker's updates alternating between the processes, one after the other or two at the same moment,
  are each handled once and in Telegram's order (update_id);
- the WeChat access_token is fetched once by processes that all need it at the same moment.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from bot.channels.wechat_token import WechatToken
from bot.core.inbox import InboxItem
from bot.core.store import Conversation, TranscriptLine
from common.db import open_database
from common.settings import Config
from tests.conftest import PROJECT, make_config
from tests.fakes.telegram_server import FakeBotApi
from tests.fakes.wechat_server import APP_ID, FakeWechat
from tests.fakes.wechat_server import SECRET as WX_SECRET
from tests.serving import free_port, qiuxue_serve
from tests.test_telegram import plain

pytestmark = pytest.mark.slow
SECRET = "two-processes_secret"
FLOOD_MAX = 8  # messages per FLOOD_WINDOW seconds; the window is long so a slow machine stays inside it
FLOOD_WINDOW = "120"


class TwoServers:
    def __init__(self, cfg: Config, fake: FakeBotApi, ports: list[int]) -> None:
        self.cfg, self.fake, self.ports = cfg, fake, ports

    def post(self, process: int, user: int, text: str) -> int:
        """A worker's message, POSTed to process 0 or 1 like Telegram's webhook call; its update_id."""
        self.fake.send_text(user, text)
        update = self.fake.updates[-1]
        status = FakeBotApi.post_update_to(f"http://127.0.0.1:{self.ports[process]}/telegram", update, SECRET)
        assert status == 200
        return int(update["update_id"])

    def post_at_once(self, updates: list[dict], ports: list[int]) -> list[int]:  # type: ignore[type-arg]
        """POST each update to its port at the same moment (threads released together); the statuses."""
        go = threading.Barrier(len(updates))
        statuses: list[int] = []

        def post(update: dict, port: int) -> None:  # type: ignore[type-arg]
            go.wait()
            statuses.append(FakeBotApi.post_update_to(f"http://127.0.0.1:{port}/telegram", update, SECRET))

        threads = [threading.Thread(target=post, args=(u, p)) for u, p in zip(updates, ports, strict=True)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return statuses

    def replies(self, user: int, count: int, timeout: float = 90) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.fake.sent(user)) < count:
            assert time.monotonic() < deadline, f"{len(self.fake.sent(user))} of {count} replies"
            time.sleep(0.1)
        time.sleep(0.5)  # a doubled reply would arrive now
        return [plain(r["text"]) for r in self.fake.sent(user)]

    def said(self, user: int) -> list[str]:
        """What the worker said, in the order the bot handled it (the transcript)."""
        with open_database(self.cfg)() as s:
            conv = s.scalars(select(Conversation).filter_by(channel="telegram", user_id=str(user))).one()
            return list(s.scalars(select(TranscriptLine.text).where(TranscriptLine.conversation_id == conv.id,
                                                                    TranscriptLine.direction == "in")
                                  .order_by(TranscriptLine.id)))

    def handled_once(self, user: int) -> list[str]:
        with open_database(self.cfg)() as s:
            return list(s.scalars(select(InboxItem.status).where(InboxItem.key == f"telegram:{user}")))


@pytest.fixture(scope="module")
def servers(pg_kb_cfg: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoServers]:
    cfg = make_config(tmp_path_factory.mktemp("two"), QIUXUE__DATA_DIR=str(pg_kb_cfg.data_path),
                      QIUXUE__DATABASE__URL=pg_kb_cfg.database.url)
    ports = [free_port(), free_port()]
    with FakeBotApi() as fake, ExitStack() as stack:
        for port in ports:
            stack.enter_context(qiuxue_serve(
                cfg, port, fake, TELEGRAM_WEBHOOK_SECRET=SECRET, QIUXUE__TELEGRAM__MODE="webhook",
                QIUXUE__TELEGRAM__WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram",
                QIUXUE__CHAT__RATE_LIMIT_MESSAGES=str(FLOOD_MAX), QIUXUE__CHAT__RATE_LIMIT_SECONDS=FLOOD_WINDOW))
        yield TwoServers(cfg, fake, ports)


def test_the_flood_limit_holds_across_two_processes(servers: TwoServers) -> None:
    user = 7101
    for n in range(12):  # six to each process: under the limit in either alone
        servers.post(n % 2, user, f"第{n}条消息")
    replies = servers.replies(user, 12)
    assert len(replies) == 12
    assert sum("太快" in r for r in replies) == 12 - FLOOD_MAX  # one window for the worker, in the database
    assert servers.said(user) == [f"第{n}条消息" for n in range(12)]  # every one recorded, in order


def test_a_workers_updates_alternating_between_processes_are_handled_once_in_order(servers: TwoServers) -> None:
    user = 7102
    sent: list[str] = []
    for n in range(6):  # one after the other, alternating
        servers.post(n % 2, user, f"问题{n}")
        sent.append(f"问题{n}")
    for pair in range(3):  # two at the same moment, one to each process, the earlier update to either
        texts = [f"同时{pair}a", f"同时{pair}b"]
        for text in texts:  # update_ids in this order
            servers.fake.send_text(user, text)
        updates = servers.fake.updates[-2:]
        statuses = servers.post_at_once(updates, servers.ports if pair % 2 == 0 else servers.ports[::-1])
        assert statuses == [200, 200]
        sent.extend(texts)
    replies = servers.replies(user, len(sent))
    assert len(replies) == len(sent)  # one reply each: nothing doubled, nothing dropped
    assert servers.handled_once(user) == ["done"] * len(sent)
    assert servers.said(user) == sent


def test_processes_needing_the_wechat_token_at_once_fetch_it_once(pg_kb_cfg: Config, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Four OS processes, each with its own client on the shared database, send at the same moment."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with open_database(pg_kb_cfg).begin() as s:
        s.execute(delete(WechatToken).where(WechatToken.app_id == APP_ID))
    script = ("import sys, time\n"
              "from bot.channels.wechat_api import WechatApi\n"
              "from common.db import _sessions_for\n"
              "base, app, secret, url, user, start = sys.argv[1:7]\n"
              "api = WechatApi(base, app, secret, _sessions_for(url), timeout=10)\n"
              "time.sleep(max(0.0, float(start) - time.time()))\n"
              "api.send_text(user, 'hello from ' + str(sys.argv[7]))\n")
    with FakeWechat(aes=True) as wx:
        user = "o-token-procs"
        wx.interactions[user] = time.time()
        start = time.time() + 6  # after every interpreter has imported and opened the database
        procs = [subprocess.Popen([sys.executable, "-c", script, wx.base_url, APP_ID, WX_SECRET,
                                   pg_kb_cfg.database.url, user, str(start), str(n)], cwd=PROJECT)
                 for n in range(4)]
        codes = [p.wait(120) for p in procs]
        assert codes == [0, 0, 0, 0]
        assert wx.token_requests == 1
        assert sorted(wx.sent_to(user)) == [f"hello from {n}" for n in range(4)]
