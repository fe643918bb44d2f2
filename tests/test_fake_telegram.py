"""The fake Telegram Bot API, driven by a real python-telegram-bot Application, Bot and plain HTTP."""

from __future__ import annotations

import asyncio
import datetime as dtm
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.fakes.telegram_server import FakeBotApi

TOKEN = "123456789:AAFakeTokenForTests_0123456789abcdef"
USER = 424242
GROUP = -1001234567890


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # RetryAfter.retry_after as a timedelta, without a warning
    with FakeBotApi() as server:
        yield server


def build_application(fake: FakeBotApi, errors: list[BaseException]) -> Application:  # type: ignore[type-arg]
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(f"你说：{update.message.text}")

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("是", callback_data="yes"),
                                          InlineKeyboardButton("否", callback_data="no")]])
        await update.message.reply_text("欢迎！你是工会会员吗？", reply_markup=keyboard)

    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("收到")
        await query.edit_message_text(f"你选了：{query.data}")

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.error is not None
        errors.append(context.error)

    application = (Application.builder().token(TOKEN).base_url(f"{fake.base_url}/bot")
                   .base_file_url(f"{fake.base_url}/file/bot").build())
    application.add_handler(CommandHandler("start", start))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_error_handler(on_error)
    return application


async def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_a_real_application_polls_answers_and_shuts_down(fake: FakeBotApi, no_network: list[object]) -> None:
    errors: list[BaseException] = []
    application = build_application(fake, errors)
    started = time.monotonic()

    async def scenario() -> None:
        async with application:  # initialize() calls getMe; leaving calls shutdown()
            await application.start()
            assert application.updater is not None
            await application.updater.start_polling(poll_interval=0, timeout=1)
            try:
                fake.send_text(USER, "你好")
                echoed = await fake.wait_for_async("你说：你好", timeout=5)
                assert echoed["chat_id"] == USER and echoed["reply_to_message_id"] is None  # no quote in private

                fake.send_command(USER, "/start")
                menu = await fake.wait_for_async(lambda r: r["text"].startswith("欢迎"), timeout=5)
                assert fake.buttons(menu) == [("是", "yes"), ("否", "no")]
                assert menu["reply_markup"] == {"inline_keyboard": [[{"text": "是", "callback_data": "yes"},
                                                                     {"text": "否", "callback_data": "no"}]]}

                query_id = fake.press_button(USER, menu["message_id"], "yes")
                answer = await fake.wait_for_call_async("answerCallbackQuery", timeout=5)
                assert answer == {"callback_query_id": query_id, "text": "收到"}
                edited = await fake.wait_for_async(lambda r: r["method"] == "editMessageText", timeout=5)
                assert edited["message_id"] == menu["message_id"] and edited["text"] == "你选了：yes"
                stored = fake.message(menu["message_id"])
                assert stored["text"] == "你选了：yes" and "reply_markup" not in stored  # keyboard dropped

                # No rate limiter configured: the 429 reaches the handler as RetryAfter (not retried).
                fake.fail_next("sendMessage", error_code=429, retry_after=1)
                fake.send_text(USER, "限流")
                await wait_until(lambda: errors)
                assert isinstance(errors[0], RetryAfter)
                assert errors[0].retry_after == dtm.timedelta(seconds=1)
                fake.send_text(USER, "再来")
                await fake.wait_for_async("你说：再来", timeout=5)
                assert not [r for r in fake.sent() if r["text"] == "你说：限流"]

                topic = await application.bot.create_forum_topic(GROUP, "报名咨询")
                asked = fake.send_group_text(GROUP, USER, "群里问", message_thread_id=topic.message_thread_id)
                reply = await fake.wait_for_async("你说：群里问", timeout=5)
                assert reply["chat_id"] == GROUP and reply["message_thread_id"] == topic.message_thread_id
                assert reply["reply_to_message_id"] == asked  # PTB quotes by default outside private chats
            finally:
                await application.updater.stop()  # one last getUpdates confirms what was fetched
                await application.stop()

    asyncio.run(scenario())

    assert len(errors) == 1 and not application.running
    methods = [method for method, _ in fake.calls]
    assert methods[0] == "getMe" and methods[1] == "deleteWebhook" and methods[2] == "getUpdates"
    polls = fake.calls_to("getUpdates")
    assert polls[0]["timeout"] == 1 and polls[-1]["timeout"] == 0 and polls[-1]["offset"] == fake.updates[-1]["update_id"] + 1
    assert fake.pending_updates() == [] and fake.token == TOKEN
    assert [r["text"] for r in fake.sent(USER)] == ["你说：你好", "欢迎！你是工会会员吗？", "你选了：yes", "你说：再来"]
    assert no_network == []
    assert time.monotonic() - started < 10


def test_bot_methods_round_trip(fake: FakeBotApi) -> None:
    async def scenario() -> None:
        bot = Bot(TOKEN, base_url=f"{fake.base_url}/bot", base_file_url=f"{fake.base_url}/file/bot")
        async with bot:
            assert bot.username == "qiuxue_test_bot" and bot.bot.can_join_groups is True

            photo = await bot.send_photo(USER, photo=io.BytesIO(b"\x89PNG fake"), filename="图.png", caption="海报")
            upload = fake.calls_to("sendPhoto")[0]["photo"]
            assert upload["filename"] == "图.png" and upload["data"] == b"\x89PNG fake"
            file = await bot.get_file(photo.photo[-1].file_id)
            assert await file.download_as_bytearray() == b"\x89PNG fake"

            fake.send_document(USER, content=b"%PDF-1.4 form")
            document = fake.updates[-1]["message"]["document"]
            assert await (await bot.get_file(document["file_id"])).download_as_bytearray() == b"%PDF-1.4 form"

            copied = await bot.copy_message(USER, from_chat_id=USER, message_id=photo.message_id)
            assert fake.sent()[-1]["method"] == "copyMessage" and fake.sent()[-1]["message_id"] == copied.message_id

            assert await bot.send_chat_action(USER, ChatAction.TYPING)
            assert await bot.set_my_commands([("start", "开始"), ("help", "帮助")])
            assert fake.commands == [{"command": "start", "description": "开始"},
                                     {"command": "help", "description": "帮助"}]
            with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
                await bot.set_my_commands([("Start", "大写不行")])

            assert await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="s3cret-token")
            info = await bot.get_webhook_info()
            assert info.url == "http://127.0.0.1:9/hook" and fake.webhook_secret == "s3cret-token"
            assert await bot.delete_webhook() and (await bot.get_webhook_info()).url == ""

            # What Telegram itself rejects, the fake rejects too. (PTB strips "Bad Request: " and
            # str.capitalize()s the rest, so "BUTTON_DATA_INVALID" arrives as "Button_data_invalid".)
            with pytest.raises(BadRequest, match="(?i)message is too long"):
                await bot.send_message(USER, "长" * 4097)
            with pytest.raises(BadRequest, match="(?i)Unsupported start tag"):
                await bot.send_message(USER, "<div>不支持</div>", parse_mode=ParseMode.HTML)
            with pytest.raises(BadRequest, match="(?i)reserved"):
                await bot.send_message(USER, "补助1,000元.", parse_mode=ParseMode.MARKDOWN_V2)
            await bot.send_message(USER, "补助1,000元\\.", parse_mode=ParseMode.MARKDOWN_V2)
            with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
                await bot.send_message(USER, "按钮", reply_markup=InlineKeyboardMarkup(
                    [[InlineKeyboardButton("太长", callback_data="数据" * 20)]]))
            sent = await bot.send_message(USER, "同样")
            with pytest.raises(BadRequest, match="(?i)message is not modified"):
                await bot.edit_message_text("同样", chat_id=USER, message_id=sent.message_id)

            # Scripted failures map onto python-telegram-bot's exceptions through the HTTP status.
            fake.fail_next("sendMessage", error_code=400)
            with pytest.raises(BadRequest, match="(?i)scripted failure"):
                await bot.send_message(USER, "x")
            fake.fail_next("sendMessage", error_code=500)
            with pytest.raises(NetworkError, match="Internal Server Error"):
                await bot.send_message(USER, "x")
            fake.block_bot(USER)
            with pytest.raises(Forbidden, match="blocked"):
                await bot.send_message(USER, "x")
            with pytest.raises(InvalidToken, match="Not Found: method sendDice"):  # 404 reads as a bad token
                await bot.send_dice(USER)
            assert await bot.close() and await bot.log_out()

    asyncio.run(scenario())


def test_get_updates_long_polls_confirms_and_filters(fake: FakeBotApi) -> None:
    with httpx.Client(base_url=f"{fake.base_url}/bot{TOKEN}", trust_env=False) as client:
        def get_updates(**params: Any) -> list[dict[str, Any]]:
            form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
            body = client.post("/getUpdates", data=form).json()
            assert body["ok"] is True
            return body["result"]

        started = time.monotonic()
        assert get_updates(timeout=0.3) == []
        assert 0.25 < time.monotonic() - started < 1.5

        threading.Timer(0.2, fake.send_text, args=(USER, "迟到的消息")).start()
        started = time.monotonic()
        woken = get_updates(timeout=2)
        assert woken[0]["message"]["text"] == "迟到的消息" and time.monotonic() - started < 1.5

        message_id = fake.send_text(USER, "第二条")
        sticker_id = fake.send_sticker(USER)
        first, *rest = get_updates(offset=woken[0]["update_id"] + 1)
        assert first["message"]["message_id"] == message_id and "sticker" in rest[0]["message"]
        assert len(get_updates(offset=first["update_id"])) == 2  # not confirmed yet
        assert len(get_updates(offset=first["update_id"] + 1)) == 1  # confirmed one dropped

        fake.edit_text(USER, message_id, "第二条（改）")
        only_edits = get_updates(offset=rest[-1]["update_id"] + 1, allowed_updates=["edited_message"])
        assert only_edits[0]["edited_message"]["text"] == "第二条（改）"
        fake.send_text(USER, "被过滤")  # allowed_updates persists until changed, like Telegram
        assert get_updates(offset=only_edits[0]["update_id"] + 1) == []
        assert sticker_id > message_id and fake.pending_updates() == []

        assert client.post("/setWebhook", data={"url": "http://127.0.0.1:9/hook"}).json()["ok"]
        conflict = client.post("/getUpdates").json()
        assert conflict["error_code"] == 409 and "webhook is active" in conflict["description"]

        missing = client.post("/sendDice", json={"chat_id": USER})
        assert missing.status_code == 404
        assert missing.json() == {"ok": False, "error_code": 404, "description": "Not Found: method sendDice"}

        fake.fail_next("getMe", error_code=429, retry_after=3)
        limited = client.get("/getMe")
        assert limited.status_code == 429 and limited.json() == {
            "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3}}
        assert client.get("/getMe").json()["result"]["is_bot"] is True


def test_webhook_delivery_and_injected_updates(fake: FakeBotApi) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.headers.get("X-Telegram-Bot-Api-Secret-Token"), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{hook.server_port}/telegram"
    try:
        with httpx.Client(trust_env=False) as client:
            client.post(f"{fake.base_url}/bot{TOKEN}/setWebhook", data={"url": url, "secret_token": "abc_123"})
        sent = fake.send_group_text(GROUP, USER, "/help@qiuxue_test_bot", message_thread_id=7)
        fake.send_voice(USER)
        fake.send_photo(USER, caption="证书")
        assert fake.deliver_webhook() == [200, 200, 200] and fake.pending_updates() == []
        assert FakeBotApi.post_update_to(url, fake.updates[0], "other") == 200
    finally:
        hook.shutdown()
        hook.server_close()

    assert [secret for secret, _ in received] == ["abc_123", "abc_123", "abc_123", "other"]
    group = received[0][1]["message"]
    assert group["message_id"] == sent and group["message_thread_id"] == 7 and group["is_topic_message"]
    assert group["chat"] == {"id": GROUP, "type": "supergroup", "title": "求学圆梦测试群", "is_forum": True}
    assert group["entities"] == [{"type": "bot_command", "offset": 0, "length": 21}]
    assert received[1][1]["message"]["voice"]["duration"] == 3
    assert received[2][1]["message"]["caption"] == "证书"
    update = Update.de_json(received[2][1], None)  # every injected update parses with python-telegram-bot
    assert update.effective_user is not None and update.effective_user.first_name == "工友"
