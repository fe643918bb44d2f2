"""The WeChat Official Account channel against a fake WeChat on 127.0.0.1 (tests/fakes/wechat_server.py):
signed callbacks in plaintext and safe (AES) mode answered passively and checked as WeChat checks them,
the 5-second rule, retries answered once (also across two apps on one PostgreSQL), bad callbacks
refused with nothing stored, the shared access_token (expiry, 40001/42001), 45015 told to the agent, a
full hand-off to the Telegram staff side, and an eligibility check by numbers across a restart."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import xmltodict
from sqlalchemy import delete, func, select
from wechatpy import parse_message

from bot.channels import wechat
from bot.channels.base import TransientFailure
from bot.channels.wechat import pick_passive, to_incoming
from bot.channels.wechat_api import WechatApi, split_text
from bot.channels.wechat_token import WechatToken
from bot.core.dialogue import Dialogue
from bot.core.hub import Hub
from bot.core.inbox import InboxItem
from bot.core.messages import UNSUPPORTED
from bot.core.outbox import Claimed, Outbox, OutboxItem, OutboxStatus
from bot.core.redact import redact_log_text
from bot.core.retention import forget
from bot.core.store import Conversation, TranscriptLine
from bot.helpdesk.store import EventKind, Ticket, TicketEvent
from bot.server import load_channels
from common.clock import utcnow
from common.db import open_database
from common.settings import Config
from tests.conftest import FAST, make_config, unique_user
from tests.fakes.telegram_server import FakeBotApi
from tests.fakes.wechat_server import ACCOUNT, APP_ID, SECRET, FakeWechat
from tests.serving import free_port, running_hub
from tests.test_helpdesk import AGENT, GROUP, in_group
from tests.test_telegram import plain


def wx_cfg(base: Config, fake: FakeWechat, tmp_path: Path, **extra: str) -> Config:
    db = {"QIUXUE__DATABASE__URL": base.database.url} if base.database.url else {}
    return make_config(tmp_path, QIUXUE__DATA_DIR=str(base.data_path), **db, **FAST,
                       QIUXUE__WECHAT__API_BASE_URL=fake.base_url, QIUXUE__SERVER__PORT=str(free_port()), **extra)


@contextlib.asynccontextmanager
async def wechat_app(cfg: Config, fake: FakeWechat, telegram: bool = False) -> AsyncIterator[tuple[Hub, str]]:
    """`qiuxue serve`'s app with the WeChat channel (and Telegram if asked) on cfg.server.port; the callback URL."""
    async with running_hub(cfg, with_telegram=telegram, serve_http=True,
                           build=lambda hub: wechat.create(cfg, hub, fake.secrets)) as hub:
        yield hub, f"http://127.0.0.1:{cfg.server.port}{cfg.wechat.path}"


async def eventually(check, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await asyncio.to_thread(check):
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def replies_to(fake: FakeWechat, openid: str) -> list[str]:
    """Everything the worker got: passive replies and customer-service messages."""
    return fake.passive_to(openid) + fake.sent_to(openid)


# -- signed callbacks, passive replies ---------------------------------------------------------------------

@pytest.mark.parametrize("aes", [True, False], ids=["aes", "plaintext"])
def test_signed_callbacks_get_passive_replies_that_wechat_accepts(kb_cfg, no_network, monkeypatch, tmp_path,
                                                                  aes: bool) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    user = unique_user("o")

    async def scenario(fake: FakeWechat, cfg: Config) -> None:
        async with wechat_app(cfg, fake) as (_hub, url):
            check = await asyncio.to_thread(_url_check, fake, url)
            assert check == "echo-123"
            hello = await asyncio.to_thread(fake.post_event, url, user, "subscribe")
            assert hello.status == 200 and hello.reply is not None
            assert "求学圆梦助手" in hello.reply and "回复数字选择" in hello.reply and "\n1. " in hello.reply
            answer = await asyncio.to_thread(fake.post_text, url, user, "广东能补多少钱")
            assert answer.status == 200 and answer.reply is not None and "来源" in answer.reply
            assert answer.seconds < cfg.wechat.reply_budget_seconds + 0.5

    with FakeWechat(aes=aes) as fake:
        asyncio.run(scenario(fake, wx_cfg(kb_cfg, fake, tmp_path)))
        assert len(fake.passive_to(user)) == 2 and fake.sent_to(user) == []  # nothing went through the API
    assert no_network == []
    if aes:
        assert fake.crypto is not None  # replies were decrypted and their MsgSignature checked by the fake


def _url_check(fake: FakeWechat, url: str) -> str:
    import urllib.request

    signed, _ = fake.signed(url, fake.message("nobody", "text", Content="x"))
    with urllib.request.urlopen(f"{signed}&echostr=echo-123", timeout=5) as r:
        return r.read().decode()


# -- the 5-second rule ---------------------------------------------------------------------------------------

def test_a_slow_answer_gets_success_within_the_budget_and_arrives_once_through_the_api(kb_cfg, wx, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = wx_cfg(kb_cfg, wx, tmp_path, QIUXUE__WECHAT__REPLY_BUDGET_SECONDS="1")
    user = unique_user("slow")

    async def scenario() -> None:
        async with wechat_app(cfg, wx) as (hub, url):
            real_turn = hub.dialogue.turn

            def slow_turn(*args, **kwargs):  # type: ignore[no-untyped-def]
                time.sleep(1.5)  # the core takes longer than the budget
                return real_turn(*args, **kwargs)

            hub.dialogue.turn = slow_turn  # type: ignore[method-assign]
            got = await asyncio.to_thread(wx.post_text, url, user, "广东能补多少钱")
            assert got.status == 200 and got.body == "success" and got.reply is None
            assert got.seconds < 1.3  # within the budget, far inside WeChat's 5 seconds
            await eventually(lambda: wx.sent_to(user))
            await asyncio.sleep(0.5)  # nothing more comes

    asyncio.run(scenario())
    assert len(wx.sent_to(user)) == 1 and "来源" in wx.sent_to(user)[0]
    assert wx.passive_to(user) == []


def test_a_held_reply_is_taken_passively_or_sent_by_the_delivery_loop_never_both(kb_cfg) -> None:  # type: ignore[no-untyped-def]
    """The race at the end of the budget: callbacks try to take their rows while the delivery loop claims."""
    outbox = Outbox(open_database(kb_cfg))
    channel, base = "wechat-race", int(time.time() * 1000) % 1_000_000_000
    ids: dict[int, tuple[int, float]] = {}  # row → (inbox id, when its hold ends, monotonic)
    start = time.monotonic() + 0.2
    with outbox.sessions.begin() as s:
        for n in range(24):  # holds ending one after another, 40 ms apart
            ends = 0.2 + 0.04 * n
            row = Outbox.add(s, channel, f"race-{base}-{n}", {"text": f"答复 {n}"}, inbox_id=base + n,
                             not_before=utcnow() + timedelta(seconds=ends))
            ids[row.id] = (base + n, start + 0.04 * n)
    taken: set[int] = set()
    claimed: set[int] = set()

    def take_all() -> None:  # each callback tries just before or just after its hold ends
        for n, (row_id, (inbox_id, ends)) in enumerate(ids.items()):
            time.sleep(max(0.0, ends + (0.015 if n % 2 else -0.015) - time.monotonic()))
            if outbox.take_passive(inbox_id, [row_id]):
                taken.add(row_id)

    def claim_all() -> None:  # the delivery loop, polling hard
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(claimed) + len(taken) < len(ids):
            claimed.update(c.id for c in outbox.claim({channel}))

    threads = [threading.Thread(target=take_all), threading.Thread(target=claim_all)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert taken and claimed  # both sides won some: the race really happened
    assert not taken & claimed and taken | claimed == set(ids)
    with outbox.sessions() as s:
        rows = {r.id: r for r in s.scalars(select(OutboxItem).where(OutboxItem.id.in_(list(ids))))}
    # taken: on their way in a response (`sent` once it is written); claimed: on their way through the API
    assert all(rows[i].status == OutboxStatus.SENDING and rows[i].platform_ref == "passive" for i in taken)
    assert all(rows[i].status == OutboxStatus.SENDING and rows[i].platform_ref == "" for i in claimed)


# -- retries and duplicates ------------------------------------------------------------------------------------

def test_the_same_msgid_posted_three_times_is_answered_once(kb_cfg, wx, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = wx_cfg(kb_cfg, wx, tmp_path)
    user = unique_user("dup")

    async def scenario() -> None:
        async with wechat_app(cfg, wx) as (_hub, url):
            msg = wx.message(user, "text", Content="广东能补多少钱")
            got = [await asyncio.to_thread(wx.post_message, url, dict(msg)) for _ in range(3)]
            assert [g.status for g in got] == [200, 200, 200]
            assert got[0].reply is not None and got[1].body == got[2].body == "success"
            photo = await asyncio.to_thread(wx.post_message, url, wx.message(user, "image", PicUrl="http://x/1.jpg",
                                                                                MediaId="m1"))
            assert photo.reply is not None and "图片" in photo.reply  # a clear reply for what it cannot read
            await asyncio.sleep(0.5)

    asyncio.run(scenario())
    assert len([r for r in replies_to(wx, user) if "来源" in r]) == 1 and wx.sent_to(user) == []


def test_retries_to_two_app_instances_on_one_postgresql_are_answered_once(pg_kb_cfg, wx, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = wx_cfg(pg_kb_cfg, wx, tmp_path / "a")
    second = wx_cfg(pg_kb_cfg, wx, tmp_path / "b")
    user = unique_user("pg")
    msg = wx.message(user, "text", Content="浙江怎么申请")

    async def scenario() -> None:
        async with wechat_app(first, wx) as (_a, url_a), wechat_app(second, wx) as (_b, url_b):
            got = await asyncio.gather(*(asyncio.to_thread(wx.post_message, url, dict(msg))
                                         for url in (url_a, url_b)))
            got.append(await asyncio.to_thread(wx.post_message, url_b, dict(msg)))
            assert all(g.status == 200 for g in got)
            assert sum(g.reply is not None for g in got) <= 1
            await eventually(lambda: replies_to(wx, user))
            await asyncio.sleep(1.0)  # a second copy would have arrived by now

    asyncio.run(scenario())
    assert len(replies_to(wx, user)) == 1
    with open_database(first)() as s:
        assert s.scalar(select(func.count()).select_from(InboxItem)
                        .where(InboxItem.channel == "wechat", InboxItem.external_id == msg["MsgId"])) == 1


# -- bad callbacks ------------------------------------------------------------------------------------------------

def test_bad_callbacks_get_4xx_and_store_nothing(kb_cfg, wx, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = wx_cfg(kb_cfg, wx, tmp_path)
    user = unique_user("bad")

    async def scenario() -> dict[str, int | None]:
        async with wechat_app(cfg, wx) as (_hub, url):
            msg = wx.message(user, "text", Content="广东能补多少钱")
            signed, body = wx.signed(url, msg)
            forged, _ = wx.signed(url, msg, signature="0" * 40)
            stale, stale_body = wx.signed(url, msg, timestamp=int(time.time()) - 3600)
            bad_xml, bad_xml_body = wx.signed(url, "<xml><MsgType>text</MsgType><FromUserName>")
            not_message, not_message_body = wx.signed(url, "<html><body>hi</body></html>")
            bomb, bomb_body = wx.signed(url, '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
                                             f"<xml><FromUserName>{user}</FromUserName><MsgType>text</MsgType>"
                                             "<Content>&b;</Content><MsgId>7</MsgId></xml>")
            cases = {
                "forged signature": (forged, body),
                "no signature": (url, body),
                "stale timestamp": (stale, stale_body),
                "forged msg_signature": (signed.replace("msg_signature=", "msg_signature=0"), body),
                "malformed encrypted body": (signed, b"<xml><Encrypt>not base64 at all"),
                "malformed XML inside": (bad_xml, bad_xml_body),
                "not a WeChat message": (not_message, not_message_body),
                "XML entities": (bomb, bomb_body),
                "plaintext in safe mode": (signed.replace("encrypt_type=aes", "encrypt_type=raw"),
                                           f"<xml><FromUserName>{user}</FromUserName><MsgType>text</MsgType>"
                                           "<Content>hi</Content><MsgId>1</MsgId></xml>".encode()),
            }
            statuses = {name: (await asyncio.to_thread(wx.post_raw, target, data)).status
                        for name, (target, data) in cases.items()}
            statuses["1 MB body"] = (await asyncio.to_thread(wx.post_oversized, signed, body + b" " * (1 << 20))).status
            return statuses

    statuses = asyncio.run(scenario())
    assert all(code is not None and 400 <= code < 500 for code in statuses.values()), statuses
    assert statuses["forged signature"] == statuses["stale timestamp"] == statuses["forged msg_signature"] == 403
    assert statuses["1 MB body"] == 413
    with open_database(cfg)() as s:
        assert s.scalars(select(Conversation).where(Conversation.user_id == user)).first() is None
        assert s.scalars(select(InboxItem).where(InboxItem.key == f"wechat:{user}")).first() is None
        assert s.scalar(select(func.count()).select_from(TranscriptLine).join(Conversation)
                        .where(Conversation.user_id == user)) == 0


# -- the access token --------------------------------------------------------------------------------------------

def _api(cfg: Config, fake: FakeWechat) -> WechatApi:
    return WechatApi(fake.base_url, APP_ID, SECRET, open_database(cfg), timeout=5)


def _fresh_token_row(cfg: Config) -> None:
    with open_database(cfg).begin() as s:
        s.execute(delete(WechatToken).where(WechatToken.app_id == APP_ID))


def test_an_expired_token_is_refreshed_once_and_the_send_succeeds(db_cfg, wx) -> None:  # type: ignore[no-untyped-def]
    _fresh_token_row(db_cfg)
    user = unique_user("tok")
    wx.interactions[user] = time.time()
    one, other = _api(db_cfg, wx), _api(db_cfg, wx)  # two processes' clients on one database
    one.send_text(user, "第一条")
    other.send_text(user, "第二条")
    assert wx.token_requests == 1  # fetched once, shared through the database
    wx.expire_tokens()
    other.send_text(user, "第三条")  # 42001 → one refresh, one retry
    one.send_text(user, "第四条")  # finds the refreshed token in the database
    assert wx.token_requests == 2 and [code for code, _ in wx.refused] == [42001]
    assert wx.sent_to(user) == ["第一条", "第二条", "第三条", "第四条"]
    wx.fail_next(40001)
    wx.fail_next(40001)  # refused again after the refresh: no loop of refreshes
    with pytest.raises(TransientFailure, match="40001"):
        one.send_text(user, "第五条")
    assert wx.token_requests == 3 and "第五条" not in wx.sent_to(user)


def test_processes_starting_at_once_fetch_the_token_once(db_cfg, wx) -> None:  # type: ignore[no-untyped-def]
    _fresh_token_row(db_cfg)
    user = unique_user("many")
    wx.interactions[user] = time.time()
    clients = [_api(db_cfg, wx) for _ in range(6)]
    threads = [threading.Thread(target=c.send_text, args=(user, f"消息{n}")) for n, c in enumerate(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert wx.token_requests == 1 and len(wx.sent_to(user)) == 6


def test_a_token_fetched_with_a_wrong_secret_is_a_failure_not_a_crash(kb_cfg, wx) -> None:  # type: ignore[no-untyped-def]
    _fresh_token_row(kb_cfg)
    api = WechatApi(wx.base_url, APP_ID, "wrong-secret", open_database(kb_cfg), timeout=5)
    with pytest.raises(TransientFailure, match="40125"):
        api.send_text("anyone", "hi")


# -- hand-off: 45015, and the Telegram staff side --------------------------------------------------------------

def test_45015_is_recorded_on_the_outbox_row_and_the_agent_told(kb_cfg, wx, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = wx_cfg(kb_cfg, wx, tmp_path, QIUXUE__HELPDESK__AGENTS="[777]")
    user = unique_user("win")

    async def scenario() -> int:
        async with wechat_app(cfg, wx) as (hub, url):
            got = await asyncio.to_thread(wx.post_text, url, user, "转人工")
            assert got.reply is not None and "排第" in got.reply
            with hub.sessions() as s:
                ticket = s.scalars(select(Ticket).where(Ticket.user_id == user)).one()
            wx.forget(user)  # WeChat says the worker wrote more than 48 hours ago
            hub.helpdesk.agent_message(ticket.id, "777", "小李", "你好，还需要帮忙吗？", source=f"console:{user}")
            hub.kick()
            await eventually(lambda: any("还需要帮忙" in r.payload["text"]
                                         for r in _rows(cfg, user, OutboxStatus.FAILED)))
            return ticket.id

    ticket_id = asyncio.run(scenario())
    failed = [r for r in _rows(cfg, user, OutboxStatus.FAILED) if "还需要帮忙" in r.payload["text"]]
    assert len(failed) == 1 and "45015" in failed[0].error and "48-hour" in failed[0].error
    with open_database(cfg)() as s:
        told = [e.text for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id,
                                                                    TicketEvent.kind == EventKind.UNDELIVERED))]
    assert told and "45015" in told[0]
    assert wx.sent_to(user) == []
    forget(open_database(cfg), "wechat", user)  # no open ticket left in the shared database for later tests


def _rows(cfg: Config, user: str, status: OutboxStatus) -> list[OutboxItem]:
    with open_database(cfg)() as s:
        return list(s.scalars(select(OutboxItem).where(OutboxItem.channel == "wechat", OutboxItem.address == user,
                                                       OutboxItem.status == status)))


def test_a_full_handoff_from_wechat_to_the_telegram_staff_and_back(kb_cfg, wx, fake: FakeBotApi, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = wx_cfg(kb_cfg, wx, tmp_path, QIUXUE__TELEGRAM__BASE_URL=f"{fake.base_url}/bot",
                 QIUXUE__HELPDESK__CHAT_ID=str(GROUP), QIUXUE__HELPDESK__AGENTS=f"[{AGENT}]")
    user = unique_user("hand")

    async def scenario() -> None:
        async with wechat_app(cfg, wx, telegram=True) as (_hub, url):
            got = await asyncio.to_thread(wx.post_text, url, user, "转人工")
            assert got.reply is not None and "排第" in got.reply
            card = await in_group(fake, "工单 #")
            assert "[wechat]" in plain(card["text"])  # the agents see which channel the worker is on
            fake.send_group_text(GROUP, AGENT, "你好，我是工会的小李", message_thread_id=card["message_thread_id"])
            await eventually(lambda: any("小李" in m for m in wx.sent_to(user)))
            await asyncio.to_thread(wx.post_text, url, user, "我在广州上班")
            await in_group(fake, "我在广州上班")

    asyncio.run(scenario())
    assert len([m for m in wx.sent_to(user) if "小李" in m]) == 1
    forget(open_database(cfg), "wechat", user)  # no open ticket left in the shared database for later tests


def test_an_eligibility_check_by_numbers_survives_a_restart(kb_cfg, wx, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = wx_cfg(kb_cfg, wx, tmp_path)
    user = unique_user("num")

    async def before() -> None:
        async with wechat_app(cfg, wx) as (_hub, url):
            places = await asyncio.to_thread(wx.post_event, url, user, "CLICK", "check")  # the menu's 我能申请吗
            assert places.reply is not None and "回复数字选择" in places.reply
            number = next(line.split(".")[0] for line in places.reply.splitlines() if line.endswith(". 广东"))
            asked = await asyncio.to_thread(wx.post_text, url, user, number)
            assert asked.reply is not None and "工会会员" in asked.reply and "1. 是" in asked.reply

    async def after() -> None:
        async with wechat_app(cfg, wx) as (_hub, url):  # a new process: the options come from the database
            nxt = await asyncio.to_thread(wx.post_text, url, user, "1")
            assert nxt.reply is not None and "粤工惠" in nxt.reply

    asyncio.run(before())
    asyncio.run(after())
    with open_database(cfg)() as s:
        conv = s.scalars(select(Conversation).where(Conversation.channel == "wechat",
                                                    Conversation.user_id == user)).one()
    assert conv.region == "广东" and conv.facts.get("union_member") is True


# -- pieces ------------------------------------------------------------------------------------------------------

def _parsed(**fields: str):  # type: ignore[no-untyped-def]
    return parse_message(xmltodict.unparse({"xml": {"ToUserName": ACCOUNT, "FromUserName": "o1",
                                                    "CreateTime": "1700000000", **fields}}))


def test_wechat_messages_become_core_messages() -> None:
    said = to_incoming(_parsed(MsgType="voice", MediaId="m", Format="amr", Recognition="广东能补多少钱", MsgId="5"))
    assert said is not None and said[0].text == "广东能补多少钱" and said[1] == "5"
    for kind, extra, media in (("voice", {"MediaId": "m"}, "voice"), ("image", {"PicUrl": "u"}, "photo"),
                               ("location", {"Location_X": "23.1", "Location_Y": "113.3"}, "location"),
                               ("link", {"Title": "t", "Url": "u"}, "link"), ("shortvideo", {}, "video")):
        got = to_incoming(_parsed(MsgType=kind, MsgId="6", **extra))
        assert got is not None and got[0].kind == UNSUPPORTED and got[0].media == media
    hello = to_incoming(_parsed(MsgType="event", Event="subscribe"))
    assert hello is not None and hello[0].text == "/start" and hello[1] == "o1:1700000000:subscribe"
    assert to_incoming(_parsed(MsgType="event", Event="CLICK", EventKey="human"))[0].text == "/human"  # type: ignore[index]
    assert to_incoming(_parsed(MsgType="event", Event="unsubscribe")) is None
    with pytest.raises(ValueError):
        to_incoming(_parsed(MsgType="text", Content="no id"))


def test_texts_are_split_under_the_limit_at_sentence_ends_and_passive_replies_pack_whole_replies() -> None:
    text = "第一句话说明补助。" * 100 + "最后一句！"
    parts = split_text(text, 300)
    assert "".join(parts) == text and all(len(p.encode()) <= 300 for p in parts)
    assert all(p.endswith(("。", "！")) for p in parts)
    assert all(len(p.encode()) <= 100 for p in split_text("长" * 500, 100))
    row = lambda n, t: Claimed(n, "wechat", "o1", "reply", {"text": t}, None, 0)  # noqa: E731
    both = pick_passive([row(1, "答案。"), row(2, "排第 1 位。")])
    assert both is not None and both.whole == [1, 2] and both.text == "答案。\n\n排第 1 位。"
    long_first = pick_passive([row(1, "很长的答案。" * 200), row(2, "短。")])
    assert long_first is not None and long_first.whole == [] and long_first.first_part_of == 1
    assert pick_passive([row(1, "短。"), row(2, "很长的答案。" * 200)]).whole == [1]  # type: ignore[union-attr]
    assert pick_passive([]) is None


def test_serve_skips_wechat_without_credentials_and_logs_no_secrets(kb_cfg, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    for name in ("WECHAT_APP_ID", "WECHAT_APP_SECRET", "WECHAT_TOKEN", "WECHAT_AES_KEY"):
        monkeypatch.delenv(name, raising=False)
    hub = Hub(Dialogue(kb_cfg))
    with caplog.at_level("WARNING"):
        assert load_channels(kb_cfg, hub, ["wechat"], set()) == []
    assert any("wechat skipped" in r.getMessage() and "WECHAT_APP_ID" in r.getMessage() for r in caplog.records)
    with pytest.raises(SystemExit, match="WECHAT_APP_SECRET"):
        load_channels(kb_cfg, hub, ["wechat"], {"wechat"})
    monkeypatch.setenv("WECHAT_APP_SECRET", "s3cr3t-value-123")
    line = redact_log_text("GET http://x/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s3cr3t-value-123 "
                           "POST /cgi-bin/message/custom/send?access_token=ACCESS_abc&x=1")
    assert "s3cr3t" not in line and "ACCESS_abc" not in line and "x=1" in line


def test_the_channel_reads_its_credentials_from_the_environment(kb_cfg, wx, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name, value in wx.secrets.items():
        monkeypatch.setenv(name, value)
    hub = Hub(Dialogue(kb_cfg))
    made = load_channels(kb_cfg, hub, ["wechat"], {"wechat"})
    assert [c.name for c in made] == ["wechat"] and made[0].crypto is not None  # safe mode: the AES key is set
    caps = hub.dialogue.capabilities["wechat"]
    assert not caps.buttons and caps.push_window == timedelta(hours=48)
    monkeypatch.delenv("WECHAT_AES_KEY")
    assert wechat.create(kb_cfg, Hub(hub.dialogue))[0].crypto is None  # plaintext mode


def test_wechat_menu_apply_sets_the_three_entries(kb_cfg, wx, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from bot.cli import main

    for name, value in wx.secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("QIUXUE__DATA_DIR", str(kb_cfg.data_path))
    monkeypatch.setenv("QIUXUE__WECHAT__API_BASE_URL", wx.base_url)
    assert main(["wechat", "menu"]) == 0 and wx.menus == []  # printed only
    assert main(["wechat", "menu", "--apply"]) == 0
    buttons = wx.menus[0]["button"]
    assert [(b["name"], b["key"]) for b in buttons] == [("我能申请吗", "check"), ("怎么申请", "apply"), ("转人工", "human")]
    assert all(to_incoming(_parsed(MsgType="event", Event="CLICK", EventKey=b["key"])) for b in buttons)
