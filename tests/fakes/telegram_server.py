"""A fake Telegram Bot API server on 127.0.0.1 that a real python-telegram-bot Application can talk to.

Point python-telegram-bot at it with

    Application.builder().token(TOKEN).base_url(f"{fake.base_url}/bot").base_file_url(f"{fake.base_url}/file/bot")

Requests arrive as POST (GET works too) to /bot<TOKEN>/<method>. python-telegram-bot 22 sends
form-encoded parameters (multipart when a file is uploaded) in which every non-string value is
JSON-encoded (ints as "123", bools as "true", reply_markup as a JSON object string) and strings are
sent raw; JSON bodies from other clients are accepted as well. Each reply is {"ok": true, "result": ...}
or {"ok": false, "error_code": N, "description": ...} with HTTP status N, because python-telegram-bot
picks its exception class from the HTTP status (400 BadRequest, 403 Forbidden, 404/401 InvalidToken,
409 Conflict, other NetworkError) and raises RetryAfter whenever parameters.retry_after is present.

Tests inject user activity (send_text, press_button, ...) which is queued as Updates for getUpdates,
then observe what the bot did through `calls`, `sent()` and `wait_for()`. Like the real API it rejects
empty or over-long texts, malformed HTML/MarkdownV2, callback_data over 64 bytes, edits that change
nothing ("message is not modified"), and unknown callback query ids; set `check_markup = False` to
skip the markup checks. `wait_for` blocks its thread: from a coroutine on the bot's event loop use
`await fake.wait_for_async(...)`, or the bot never gets to run.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import email.policy
import html
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from email.parser import BytesParser
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

JsonDict = dict[str, Any]
Record = dict[str, Any]

# Parameters that are strings in the Bot API: python-telegram-bot sends them raw (not JSON-encoded),
# so "123" must stay a string. Every other form value is JSON-decoded if it parses.
STRING_PARAMS = frozenset({
    "text", "caption", "parse_mode", "callback_query_id", "url", "secret_token", "name", "title",
    "icon_custom_emoji_id", "action", "language_code", "inline_message_id", "business_connection_id",
    "message_effect_id", "photo", "document", "voice", "sticker", "audio", "video", "animation",
    "file_id", "emoji", "description", "short_description", "ip_address", "query_id", "certificate",
})
# Parameters that are JSON objects or arrays; decoded even when a JSON body carries them as strings.
JSON_PARAMS = frozenset({
    "reply_markup", "allowed_updates", "entities", "caption_entities", "reply_parameters",
    "link_preview_options", "commands", "scope", "media",
})
# What getUpdates delivers when allowed_updates was never set, or set to [] (as documented).
DEFAULT_UPDATE_TYPES = frozenset({
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages", "inline_query",
    "chosen_inline_result", "callback_query", "shipping_query", "pre_checkout_query",
    "purchased_paid_media", "poll", "poll_answer", "my_chat_member", "chat_join_request",
    "chat_boost", "removed_chat_boost",
})
CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})
HTML_TAGS = frozenset({
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code",
    "pre", "blockquote", "tg-emoji",
})
TOPIC_COLORS = frozenset({7322096, 16766590, 13338331, 9367192, 16749490, 16478047})
ERROR_DESCRIPTIONS = {
    400: "Bad Request: scripted failure",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
MAX_TEXT, MAX_CAPTION, MAX_CALLBACK_DATA = 4096, 1024, 64
COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]+)?")
BOT_COMMAND_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")
SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
MARKDOWN_V2_RESERVED = "#+-=|{}.!>"


class BotApiError(Exception):
    """Raised by a method implementation to answer {"ok": false, ...} with this code."""

    def __init__(self, error_code: int, description: str, parameters: JsonDict | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def payload(self) -> JsonDict:
        body: JsonDict = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad_request(what: str) -> BotApiError:
    return BotApiError(400, f"Bad Request: {what}")


def _decode_param(name: str, raw: str) -> Any:
    if name in STRING_PARAMS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _read_body(req: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in req.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while (size := int(req.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
            chunks.append(req.rfile.read(size))
            req.rfile.readline()
        while req.rfile.readline().strip():  # trailers
            pass
        return b"".join(chunks)
    return req.rfile.read(int(req.headers.get("Content-Length") or 0))


def _parse_multipart(content_type: str, body: bytes) -> JsonDict:
    """Text parts are decoded like form values; file parts become {"filename", "content_type", "data"}."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    params: JsonDict = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            filename = filename.replace("%22", '"')  # httpx escapes quotes the HTML5 way
            params[str(name)] = {"filename": filename, "content_type": part.get_content_type(), "data": data}
        elif name is not None:
            params[str(name)] = _decode_param(str(name), data.decode("utf-8"))
    return params


def parse_params(req: BaseHTTPRequestHandler, body: bytes) -> JsonDict:
    """The request's parameters from its query string and its body, decoded to Python values."""
    params: JsonDict = {k: _decode_param(k, v) for k, v in parse_qsl(urlsplit(req.path).query,
                                                                       keep_blank_values=True)}
    content_type = req.headers.get("Content-Type", "")
    if not body:
        return params
    if content_type.startswith("application/json"):
        data = json.loads(body)
        for key, value in (data if isinstance(data, dict) else {}).items():
            if key in JSON_PARAMS and isinstance(value, str):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            params[key] = value
    elif content_type.startswith("multipart/form-data"):
        params.update(_parse_multipart(content_type, body))
    else:
        params.update({k: _decode_param(k, v)
                       for k, v in parse_qsl(body.decode("utf-8"), keep_blank_values=True)})
    return params


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _HtmlChecker(HTMLParser):
    """Telegram's HTML subset: only its tags, properly nested and closed."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = text
        self.stack: list[str] = []
        self.error: str | None = None
        self.plain: list[str] = []

    def _offset(self) -> int:
        line, col = self.getpos()
        lines = self.source.splitlines(keepends=True)
        index = sum(len(x) for x in lines[:line - 1]) + col
        return len(self.source[:index].encode())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.error is None:
            if tag not in HTML_TAGS:
                self.error = f'Unsupported start tag "{tag}" at byte offset {self._offset()}'
            else:
                self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.error is None and tag not in HTML_TAGS:
            self.error = f'Unsupported start tag "{tag}" at byte offset {self._offset()}'

    def handle_endtag(self, tag: str) -> None:
        if self.error is not None:
            return
        if not self.stack:
            self.error = f'Unexpected end tag at byte offset {self._offset()}'
        elif self.stack[-1] != tag:
            self.error = (f'Unmatched end tag at byte offset {self._offset()}, '
                          f'expected "</{self.stack[-1]}>", found "</{tag}>"')
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.plain.append(data)


def _markdown_v2_error(text: str) -> str | None:
    """The first reserved character that MarkdownV2 needs escaped but is not (outside code spans)."""
    i, in_code, at_line_start = 0, "", True
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i, at_line_start = i + 2, False
            continue
        if text.startswith("```", i) and in_code != "`":
            in_code = "" if in_code else "```"
            i += 3
            continue
        if ch == "`" and in_code != "```":
            in_code = "" if in_code == "`" else "`"
        elif not in_code and ch in MARKDOWN_V2_RESERVED and not (ch == ">" and at_line_start):
            return f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
        at_line_start = ch == "\n"
        i += 1
    return None


def check_text(text: str, parse_mode: str | None, limit: int, too_long: str, check_markup: bool) -> None:
    """Raise the BotApiError Telegram would give for this text (markup errors, length)."""
    plain = text
    mode = (parse_mode or "").lower()
    if mode == "html":
        checker = _HtmlChecker(text)
        checker.feed(text)
        checker.close()
        if checker.error is None and checker.stack:
            checker.error = f'Can\'t find end tag corresponding to start tag "{checker.stack[-1]}"'
        if checker.error and check_markup:
            raise _bad_request(f"can't parse entities: {checker.error}")
        plain = html.unescape("".join(checker.plain))
    elif mode == "markdownv2":
        error = _markdown_v2_error(text)
        if error and check_markup:
            raise _bad_request(f"can't parse entities: {error}")
        plain = re.sub(r"\\(.)", r"\1", re.sub(r"(?<!\\)[*_~|`]", "", text))
    if _utf16_len(plain) > limit:
        raise _bad_request(too_long)


def _inline_markup(markup: Any) -> JsonDict | None:
    """Validate a reply_markup; return it if it is an inline keyboard (the only kind a Message echoes)."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        return None
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad_request("field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays")
    for row in rows:
        for button in row:
            if not button.get("text"):
                raise _bad_request("BUTTON_TEXT_INVALID")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
                raise _bad_request("BUTTON_DATA_INVALID")
    return markup


class FakeBotApi:
    """A scriptable Telegram Bot API. Use as a context manager (or start()/stop()).

    `token`: if given, requests with another token get 401 Unauthorized; otherwise any token is
    accepted and the last one seen is kept in `self.token` (all of them in `self.tokens`).
    `max_poll_timeout` caps getUpdates' long-poll wait, in seconds.
    """

    def __init__(self, token: str | None = None, *, bot_id: int = 7000000001,
                 bot_username: str = "qiuxue_test_bot", bot_first_name: str = "求学圆梦助手",
                 max_poll_timeout: float = 2.0) -> None:
        self.expected_token = token
        self.token: str | None = token
        self.tokens: set[str] = set()
        self.max_poll_timeout = max_poll_timeout
        self.check_markup = True
        self.bot_user: JsonDict = {"id": bot_id, "is_bot": True, "first_name": bot_first_name,
                                   "username": bot_username}
        self.me: JsonDict = {**self.bot_user, "can_join_groups": True,
                             "can_read_all_group_messages": False, "supports_inline_queries": False,
                             "can_connect_to_business": False, "has_main_web_app": False}
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        self.webhook_allowed_updates: list[str] | None = None
        self.commands_by_scope: dict[tuple[str, str], list[JsonDict]] = {}
        self.topics: dict[tuple[int, int], JsonDict] = {}
        self.answered: dict[str, JsonDict] = {}
        self.blocked: set[int] = set()
        self.updates: list[JsonDict] = []  # every injected update, delivered or not

        self._cond = threading.Condition()
        self._calls: list[tuple[str, JsonDict]] = []
        self._sent: list[Record] = []
        self._queue: list[JsonDict] = []
        self._allowed = set(DEFAULT_UPDATE_TYPES)
        self._messages: dict[int, JsonDict] = {}
        self._chats: dict[int, JsonDict] = {}
        self._users: dict[int, JsonDict] = {}
        self._callbacks: dict[str, JsonDict] = {}
        self._files: dict[str, JsonDict] = {}
        self._failures: dict[str, list[BotApiError]] = {}
        self._stalls: dict[str, list[float]] = {}
        self.stalled: list[str] = []  # methods whose request was swallowed by `stall_next`
        self.call_times: list[tuple[str, float]] = []  # (method, time.monotonic()) of every call, as `calls`
        self._last_update_id = 100000000
        self._last_message_id = 0
        self._counter = 0
        self._closed = False
        self._methods: dict[str, Callable[[JsonDict], Any]] = {
            "getMe": lambda p: dict(self.me),
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "setMyCommands": self._set_my_commands,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendPhoto": self._send_photo,
            "copyMessage": self._copy_message,
            "createForumTopic": self._create_forum_topic,
            "getFile": self._get_file,
            "close": lambda p: True,
            "logOut": lambda p: True,
        }
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                fake._serve(self)

            def do_GET(self) -> None:  # noqa: N802
                fake._serve(self)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeBotApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()  # release long polls at once
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ scripting

    def fail_next(self, method: str, error_code: int = 429, retry_after: int = 1,
                  description: str | None = None, times: int = 1) -> None:
        """Make the next `times` calls of `method` fail with `error_code` (429 carries retry_after)."""
        if error_code == 429:
            error = BotApiError(429, description or f"Too Many Requests: retry after {retry_after}",
                                {"retry_after": retry_after})
        else:
            error = BotApiError(error_code, description or ERROR_DESCRIPTIONS.get(error_code, f"Error {error_code}"))
        with self._cond:
            self._failures.setdefault(method.lower(), []).extend([error] * times)

    def stall_next(self, method: str, seconds: float, times: int = 1) -> None:
        """Make the next `times` calls of `method` hang for `seconds`, then drop the connection unanswered —
        a network that loses the request: nothing happens here, and the client times out."""
        with self._cond:
            self._stalls.setdefault(method.lower(), []).extend([seconds] * times)

    def add_method(self, name: str, handler: Callable[[JsonDict], Any]) -> None:
        """Serve another Bot API method: handler(params) returns the result or raises BotApiError."""
        with self._cond:
            self._methods[name] = handler

    def block_bot(self, user_id: int) -> None:
        """The user blocked the bot: sending to their private chat now gets 403 Forbidden."""
        with self._cond:
            self.blocked.add(user_id)

    # ------------------------------------------------------------------ injecting user activity

    def send_text(self, user_id: int, text: str, first_name: str = "工友", chat_id: int | None = None) -> int:
        """A user's text message (commands get a bot_command entity, as a client would); its message_id."""
        return self._user_message(user_id, chat_id, first_name, self._text_fields(text))

    def send_command(self, user_id: int, command: str, first_name: str = "工友",
                     chat_id: int | None = None) -> int:
        """A command such as "/start" or "/start payload"; its message_id."""
        if not COMMAND_RE.match(command):
            raise ValueError(f"not a bot command: {command!r}")
        return self.send_text(user_id, command, first_name, chat_id)

    def send_sticker(self, user_id: int, emoji: str = "👍", chat_id: int | None = None) -> int:
        file = self._new_file("stickers", b"RIFF\x00\x00\x00\x00WEBP", "sticker.webp")
        sticker = {**file, "type": "regular", "width": 512, "height": 512, "is_animated": False,
                   "is_video": False, "emoji": emoji}
        return self._user_message(user_id, chat_id, None, {"sticker": sticker})

    def send_photo(self, user_id: int, caption: str | None = None, chat_id: int | None = None,
                   content: bytes = b"\xff\xd8\xff\xe0fake-jpeg", message_thread_id: int | None = None) -> int:
        fields: JsonDict = {"photo": self._photo_sizes(content), "caption": caption}
        if message_thread_id is not None:
            fields.update(message_thread_id=message_thread_id, is_topic_message=True)
        return self._user_message(user_id, chat_id, None, fields)

    def send_voice(self, user_id: int, duration: int = 3, chat_id: int | None = None,
                   content: bytes = b"OggS\x00fake-voice") -> int:
        voice = {**self._new_file("voice", content, "voice.oga"), "duration": duration,
                 "mime_type": "audio/ogg"}
        return self._user_message(user_id, chat_id, None, {"voice": voice})

    def send_document(self, user_id: int, file_name: str = "申请表.pdf", mime_type: str = "application/pdf",
                      caption: str | None = None, chat_id: int | None = None,
                      content: bytes = b"%PDF-1.4 fake") -> int:
        document = {**self._new_file("documents", content, file_name), "file_name": file_name,
                    "mime_type": mime_type}
        return self._user_message(user_id, chat_id, None, {"document": document, "caption": caption})

    def send_group_text(self, chat_id: int, user_id: int, text: str, message_thread_id: int | None = None,
                        first_name: str = "工友", title: str = "求学圆梦测试群") -> int:
        """A message in a forum supergroup (is_forum true), in topic `message_thread_id` if given."""
        with self._cond:
            self._chats[chat_id] = {"id": chat_id, "type": "supergroup", "title": title, "is_forum": True}
        fields = self._text_fields(text)
        if message_thread_id is not None:
            fields.update(message_thread_id=message_thread_id, is_topic_message=True)
        return self._user_message(user_id, chat_id, first_name, fields)

    def edit_text(self, user_id: int, message_id: int, new_text: str) -> None:
        """The user edits their earlier message: an edited_message update."""
        with self._cond:
            message = self._messages.get(message_id)
            if message is None or message.get("from", {}).get("id") != user_id:
                raise KeyError(f"user {user_id} sent no message {message_id}")
            message.pop("entities", None)
            message.update(self._text_fields(new_text), edit_date=int(time.time()))
            self._push_update("edited_message", copy.deepcopy(message))

    def press_button(self, user_id: int, message_id: int, data: str, check_button: bool = True) -> str:
        """The user presses an inline button under the bot's message `message_id`; the callback query id.

        With check_button, `data` must be the callback_data of a button the message currently shows.
        """
        with self._cond:
            message = self._messages.get(message_id)
            if message is None or message.get("from", {}).get("id") != self.bot_user["id"]:
                raise KeyError(f"the bot sent no message {message_id}")
            if check_button and data not in [d for _, d in self.buttons(message)]:
                raise ValueError(f"message {message_id} has no button with callback_data {data!r}; "
                                 f"it has {self.buttons(message)}")
            self._counter += 1
            query_id = str(4_300_000_000_000_000_000 + self._counter)
            query = {"id": query_id, "from": self._user(user_id, None), "data": data,
                     "chat_instance": str(-8_000_000_000_000_000_000 - message["chat"]["id"]),
                     "message": copy.deepcopy(message)}
            self._callbacks[query_id] = query
            self._push_update("callback_query", query)
            return query_id

    # ------------------------------------------------------------------ webhook mode

    @staticmethod
    def post_update_to(url: str, update: JsonDict, secret_token: str | None = None,
                       timeout: float = 10.0) -> int:
        """POST an update to a webhook like Telegram does (bypassing proxies); the HTTP status."""
        headers = {"Content-Type": "application/json"}
        if secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret_token
        request = urllib.request.Request(url, data=json.dumps(update).encode(), headers=headers, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return err.code

    def deliver_webhook(self) -> list[int]:
        """Post every pending update to the registered webhook (with its secret); 2xx ones are dropped."""
        with self._cond:
            url, secret, pending = self.webhook_url, self.webhook_secret, list(self._queue)
        if not url:
            raise RuntimeError("no webhook is set")
        statuses = []
        for update in pending:
            status = self.post_update_to(url, update, secret)
            statuses.append(status)
            if 200 <= status < 300:
                with self._cond:
                    self._queue = [u for u in self._queue if u is not update]
        return statuses

    def pending_updates(self) -> list[JsonDict]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        with self._cond:
            return copy.deepcopy(self._queue)

    # ------------------------------------------------------------------ observing the bot

    @property
    def calls(self) -> list[tuple[str, JsonDict]]:
        """Every API call in arrival order as (method, params), failed ones included (a snapshot)."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[JsonDict]:
        return [params for name, params in self.calls if name.lower() == method.lower()]

    @property
    def commands(self) -> list[JsonDict]:
        """The commands last set for the default scope and no language."""
        with self._cond:
            return list(self.commands_by_scope.get(("default", ""), []))

    def sent(self, chat_id: int | str | None = None) -> list[Record]:
        """What the bot sent or edited (sendMessage, editMessageText, sendPhoto, copyMessage), in order.

        Each record: method, message_id, chat_id, text (the caption for a photo; "" if none),
        caption, parse_mode, reply_markup (a dict, any kind, None if absent), message_thread_id,
        reply_to_message_id, and `message` (the Message as returned to the bot).
        """
        with self._cond:
            return [copy.deepcopy(r) for r in self._sent if chat_id is None or self._record_in(r, chat_id)]

    def message(self, message_id: int) -> JsonDict:
        """The current state of a stored message (the bot's or a user's)."""
        with self._cond:
            return copy.deepcopy(self._messages[message_id])

    def wait_for(self, predicate: Callable[[Record], bool] | str, timeout: float = 10.0,
                 after: int = 0) -> Record:
        """Block until a sent record (index >= after) matches; a str matches as a substring of text."""
        test = (lambda r: predicate in r["text"]) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for record in self._sent[after:]:
                    if test(record):
                        return copy.deepcopy(record)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    texts = [(r["method"], r["text"]) for r in self._sent[after:]]
                    raise TimeoutError(f"no matching message within {timeout}s; sent: {texts}")
                self._cond.wait(remaining)

    async def wait_for_async(self, predicate: Callable[[Record], bool] | str, timeout: float = 10.0,
                             after: int = 0) -> Record:
        """wait_for without blocking the event loop (runs in a worker thread)."""
        return await asyncio.to_thread(self.wait_for, predicate, timeout, after)

    def wait_for_call(self, method: str, predicate: Callable[[JsonDict], bool] | None = None,
                      timeout: float = 10.0, after: int = 0) -> JsonDict:
        """Block until a call of `method` (index >= after in `calls`) matching predicate arrives; its params."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for name, params in self._calls[after:]:
                    if name.lower() == method.lower() and (predicate is None or predicate(params)):
                        return params
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching {method} call within {timeout}s")
                self._cond.wait(remaining)

    async def wait_for_call_async(self, method: str, predicate: Callable[[JsonDict], bool] | None = None,
                                  timeout: float = 10.0, after: int = 0) -> JsonDict:
        return await asyncio.to_thread(self.wait_for_call, method, predicate, timeout, after)

    @staticmethod
    def buttons(message: JsonDict) -> list[tuple[str, str | None]]:
        """(text, callback_data) of every inline button, row by row; callback_data None for URL buttons."""
        markup = message.get("reply_markup") or {}
        return [(b["text"], b.get("callback_data")) for row in markup.get("inline_keyboard", []) for b in row]

    # ------------------------------------------------------------------ HTTP

    def _serve(self, req: BaseHTTPRequestHandler) -> None:
        try:
            body = _read_body(req)
            parts = urlsplit(req.path).path.split("/")
            if len(parts) >= 4 and parts[1] == "file" and parts[2].startswith("bot"):
                self._serve_file(req, "/".join(parts[3:]))
                return
            if len(parts) != 3 or not parts[1].startswith("bot"):
                self._reply(req, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
                return
            token, method = parts[1][3:], parts[2]
            with self._cond:
                stalls = self._stalls.get(method.lower())
                stall = stalls.pop(0) if stalls else None
                if stall is not None:
                    self.stalled.append(method)
            if stall is not None:
                time.sleep(stall)
                req.close_connection = True
                return
            try:
                params = parse_params(req, body)
            except ValueError as err:
                self._reply(req, 400, _bad_request(f"can't parse request: {err}").payload())
                return
            status, payload = self._call(token, method, params)
            self._reply(req, status, payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. python-telegram-bot cancelled a long poll)

    def _call(self, token: str, method: str, params: JsonDict) -> tuple[int, JsonDict]:
        with self._cond:
            self.tokens.add(token)
            if self.expected_token is not None and token != self.expected_token:
                return 401, BotApiError(401, "Unauthorized").payload()
            self.token = token
            self._calls.append((method, params))
            self.call_times.append((method, time.monotonic()))
            self._cond.notify_all()
            handler = next((fn for name, fn in self._methods.items() if name.lower() == method.lower()), None)
            try:
                if handler is None:
                    raise BotApiError(404, f"Not Found: method {method}")
                failures = self._failures.get(method.lower())
                if failures:
                    raise failures.pop(0)
                result = handler(params)
            except BotApiError as err:
                return err.error_code, err.payload()
            except (KeyError, TypeError, ValueError, AttributeError) as err:  # a malformed parameter
                return 400, _bad_request(f"can't handle the parameters: {err!r}").payload()
            return 200, {"ok": True, "result": result}

    def _serve_file(self, req: BaseHTTPRequestHandler, file_path: str) -> None:
        with self._cond:
            file = next((f for f in self._files.values() if f["file_path"] == file_path), None)
        if file is None:
            self._reply(req, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        req.send_response(200)
        req.send_header("Content-Type", "application/octet-stream")
        req.send_header("Content-Length", str(len(file["data"])))
        req.end_headers()
        req.wfile.write(file["data"])

    @staticmethod
    def _reply(req: BaseHTTPRequestHandler, status: int, payload: JsonDict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    # ------------------------------------------------------------------ state helpers (lock held)

    def _push_update(self, kind: str, payload: JsonDict) -> int:
        with self._cond:
            self._last_update_id += 1
            update = {"update_id": self._last_update_id, kind: payload}
            self._queue.append(update)
            self.updates.append(update)
            self._cond.notify_all()
            return self._last_update_id

    def _new_message_id(self) -> int:
        self._last_message_id += 1
        return self._last_message_id

    def _new_file(self, folder: str, data: bytes, filename: str) -> JsonDict:
        with self._cond:
            self._counter += 1
            file_id = f"AgAC-fake-{self._counter:06d}"
            extension = filename.rsplit(".", 1)[-1] if "." in filename else "bin"
            self._files[file_id] = {"file_path": f"{folder}/file_{self._counter}.{extension}", "data": data}
            return {"file_id": file_id, "file_unique_id": f"AQAD{self._counter:06d}", "file_size": len(data)}

    def _photo_sizes(self, data: bytes) -> list[JsonDict]:
        small, large = self._new_file("photos", data, "photo.jpg"), self._new_file("photos", data, "photo.jpg")
        return [{**small, "width": 90, "height": 90}, {**large, "width": 800, "height": 800}]

    def _user(self, user_id: int, first_name: str | None) -> JsonDict:
        user = self._users.setdefault(user_id, {"id": user_id, "is_bot": False, "first_name": "工友",
                                                "language_code": "zh-hans"})
        if first_name:
            user["first_name"] = first_name
        return dict(user)

    @staticmethod
    def _text_fields(text: str) -> JsonDict:
        fields: JsonDict = {"text": text}
        match = COMMAND_RE.match(text)
        if match and (match.end() == len(text) or text[match.end()].isspace()):
            fields["entities"] = [{"type": "bot_command", "offset": 0, "length": _utf16_len(match.group())}]
        return fields

    def _user_message(self, user_id: int, chat_id: int | None, first_name: str | None, fields: JsonDict) -> int:
        with self._cond:
            user = self._user(user_id, first_name)
            chat_id = user_id if chat_id is None else chat_id
            if chat_id not in self._chats:
                self._chats[chat_id] = ({"id": chat_id, "type": "private", "first_name": user["first_name"]}
                                        if chat_id == user_id else
                                        {"id": chat_id, "type": "group", "title": "群聊"})
            message = {"message_id": self._new_message_id(), "from": user, "chat": dict(self._chats[chat_id]),
                       "date": int(time.time()), **{k: v for k, v in fields.items() if v is not None}}
            self._messages[message["message_id"]] = message
            self._push_update("message", copy.deepcopy(message))
            return int(message["message_id"])

    def _chat(self, ref: Any) -> JsonDict:
        if ref is None or ref == "":
            raise _bad_request("chat_id is empty")
        if isinstance(ref, str) and not ref.startswith("@"):
            try:
                ref = int(ref)
            except ValueError:
                raise _bad_request("chat not found") from None
        if isinstance(ref, str):
            for chat in self._chats.values():
                if chat.get("username") == ref[1:]:
                    return dict(chat)
            chat = {"id": -1001000000000 - len(self._chats), "type": "channel", "title": ref[1:],
                    "username": ref[1:]}
            self._chats[chat["id"]] = chat
            return dict(chat)
        if ref in self._chats:
            return dict(self._chats[ref])
        if ref > 0:
            return {"id": ref, "type": "private"}
        return {"id": ref, "type": "supergroup" if str(ref).startswith("-100") else "group", "title": "群聊"}

    def _target_chat(self, params: JsonDict) -> JsonDict:
        chat = self._chat(params.get("chat_id"))
        if chat["type"] == "private" and chat["id"] in self.blocked:
            raise BotApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    @staticmethod
    def _record_in(record: Record, chat_id: int | str) -> bool:
        chat = record["message"]["chat"]
        return chat_id in (chat["id"], str(chat["id"]), f"@{chat.get('username')}")

    def _bot_message(self, params: JsonDict, chat: JsonDict, fields: JsonDict) -> JsonDict:
        message: JsonDict = {"message_id": self._new_message_id(), "from": dict(self.bot_user),
                             "chat": chat, "date": int(time.time())}
        thread = params.get("message_thread_id")
        if thread is not None:
            message["message_thread_id"] = thread
            if chat.get("is_forum"):
                message["is_topic_message"] = True
        reply_to = (params.get("reply_parameters") or {}).get("message_id") or params.get("reply_to_message_id")
        if reply_to in self._messages:
            original = copy.deepcopy(self._messages[reply_to])
            original.pop("reply_to_message", None)
            message["reply_to_message"] = original
        message.update({k: v for k, v in fields.items() if v is not None})
        markup = _inline_markup(params.get("reply_markup"))
        if markup is not None:
            message["reply_markup"] = markup
        self._messages[message["message_id"]] = message
        return message

    def _record(self, method: str, message: JsonDict, params: JsonDict) -> None:
        reply_to = (params.get("reply_parameters") or {}).get("message_id") or params.get("reply_to_message_id")
        self._sent.append({
            "method": method, "message_id": message["message_id"], "chat_id": message["chat"]["id"],
            "text": message.get("text") or message.get("caption") or "", "caption": message.get("caption"),
            "parse_mode": params.get("parse_mode"), "reply_markup": params.get("reply_markup"),
            "message_thread_id": message.get("message_thread_id"), "reply_to_message_id": reply_to,
            "message": copy.deepcopy(message),
        })
        self._cond.notify_all()

    def _stored_bot_message(self, params: JsonDict) -> JsonDict:
        if params.get("inline_message_id"):
            raise _bad_request("inline messages are not supported by the fake")
        message = self._messages.get(int(params.get("message_id") or 0))
        if message is None or self._chat(params.get("chat_id"))["id"] != message["chat"]["id"]:
            raise _bad_request("message to edit not found")
        if message.get("from", {}).get("id") != self.bot_user["id"]:
            raise _bad_request("message can't be edited")
        return message

    # ------------------------------------------------------------------ Bot API methods (lock held)

    def _get_updates(self, params: JsonDict) -> list[JsonDict]:
        if self.webhook_url:
            raise BotApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                   "use deleteWebhook to delete the webhook first")
        offset = params.get("offset")
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = min(float(params.get("timeout") or 0), self.max_poll_timeout)
        if "allowed_updates" in params:
            self._allowed = set(params["allowed_updates"] or DEFAULT_UPDATE_TYPES)
        if isinstance(offset, int) and offset < 0:
            self._queue = self._queue[offset:]
        deadline = time.monotonic() + timeout
        while True:
            if isinstance(offset, int) and offset > 0:
                self._queue = [u for u in self._queue if u["update_id"] >= offset]
            self._queue = [u for u in self._queue if self._allowed.intersection(u)]
            remaining = deadline - time.monotonic()
            if self._queue or self._closed or remaining <= 0:
                return copy.deepcopy(self._queue[:limit])
            self._cond.wait(remaining)

    def _send_message(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _bad_request("message text is empty")
        check_text(text, params.get("parse_mode"), MAX_TEXT, "message is too long", self.check_markup)
        message = self._bot_message(params, chat, {"text": text})
        self._record("sendMessage", message, params)
        return message

    def _send_photo(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        photo = params.get("photo")
        if not photo:
            raise _bad_request("there is no photo in the request")
        caption = params.get("caption")
        if caption:
            check_text(caption, params.get("parse_mode"), MAX_CAPTION, "message caption is too long",
                       self.check_markup)
        data = photo["data"] if isinstance(photo, dict) else str(photo).encode()
        message = self._bot_message(params, chat, {"photo": self._photo_sizes(data), "caption": caption})
        self._record("sendPhoto", message, params)
        return message

    def _copy_message(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        source = self._messages.get(int(params.get("message_id") or 0))
        if source is None or self._chat(params.get("from_chat_id"))["id"] != source["chat"]["id"]:
            raise _bad_request("message to copy not found")
        content_keys = ("text", "entities", "caption", "photo", "sticker", "voice", "document")
        fields = {k: copy.deepcopy(v) for k, v in source.items() if k in content_keys}
        if "caption" in params and "text" not in fields:
            fields["caption"] = params["caption"]
        message = self._bot_message(params, chat, fields)
        self._record("copyMessage", message, params)
        return {"message_id": message["message_id"]}

    def _edit_message_text(self, params: JsonDict) -> JsonDict:
        message = self._stored_bot_message(params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _bad_request("message text is empty")
        check_text(text, params.get("parse_mode"), MAX_TEXT, "message is too long", self.check_markup)
        markup = _inline_markup(params.get("reply_markup"))
        if text == message.get("text") and markup == message.get("reply_markup"):
            raise _bad_request("message is not modified: specified new message content and reply markup "
                               "are exactly the same as a current content and reply markup of the message")
        message["text"] = text
        message["edit_date"] = int(time.time())
        if markup is None:  # editing without reply_markup removes the keyboard, as on Telegram
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        self._record("editMessageText", message, params)
        return copy.deepcopy(message)

    def _edit_message_reply_markup(self, params: JsonDict) -> JsonDict:
        message = self._stored_bot_message(params)
        markup = _inline_markup(params.get("reply_markup"))
        if markup == message.get("reply_markup"):
            raise _bad_request("message is not modified: specified new message content and reply markup "
                               "are exactly the same as a current content and reply markup of the message")
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        self._cond.notify_all()
        return copy.deepcopy(message)

    def _answer_callback_query(self, params: JsonDict) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._callbacks:
            raise _bad_request("query is too old and response timeout expired or query ID is invalid")
        if len(str(params.get("text") or "")) > 200:
            raise _bad_request("MESSAGE_TOO_LONG")
        self.answered[query_id] = params
        return True

    def _send_chat_action(self, params: JsonDict) -> bool:
        self._target_chat(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True

    def _set_my_commands(self, params: JsonDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad_request("can't parse commands JSON object")
        for command in commands:
            if not BOT_COMMAND_NAME_RE.fullmatch(str(command.get("command", ""))):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        scope = (params.get("scope") or {}).get("type", "default")
        self.commands_by_scope[(scope, params.get("language_code") or "")] = commands
        return True

    def _set_webhook(self, params: JsonDict) -> bool:
        url = params.get("url")
        if url is None:
            raise _bad_request("parameter \"url\" is required")
        secret = params.get("secret_token")
        if secret is not None and not SECRET_TOKEN_RE.fullmatch(str(secret)):
            raise _bad_request("secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._queue.clear()
        self.webhook_url, self.webhook_secret = str(url), secret
        self.webhook_allowed_updates = params.get("allowed_updates")
        return True

    def _delete_webhook(self, params: JsonDict) -> bool:
        if params.get("drop_pending_updates"):
            self._queue.clear()
        self.webhook_url, self.webhook_secret = "", None
        return True

    def _get_webhook_info(self, params: JsonDict) -> JsonDict:
        info: JsonDict = {"url": self.webhook_url, "has_custom_certificate": False,
                          "pending_update_count": len(self._queue)}
        if self.webhook_allowed_updates:
            info["allowed_updates"] = self.webhook_allowed_updates
        return info

    def _create_forum_topic(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        if chat["id"] in self._chats and not chat.get("is_forum"):
            raise _bad_request("the chat is not a forum")
        name = params.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 128:
            raise _bad_request("TOPIC_TITLE_EMPTY")
        color = params.get("icon_color", 7322096)
        if color not in TOPIC_COLORS:
            raise _bad_request("TOPIC_ICON_COLOR_INVALID")
        topic: JsonDict = {"message_thread_id": self._new_message_id(), "name": name, "icon_color": color}
        if params.get("icon_custom_emoji_id"):
            topic["icon_custom_emoji_id"] = params["icon_custom_emoji_id"]
        self.topics[(chat["id"], topic["message_thread_id"])] = topic
        return dict(topic)

    def _get_file(self, params: JsonDict) -> JsonDict:
        file_id = str(params.get("file_id", ""))
        file = self._files.get(file_id)
        if file is None:
            raise _bad_request("invalid file_id")
        return {"file_id": file_id, "file_unique_id": f"AQAD{file_id[-6:]}", "file_size": len(file["data"]),
                "file_path": file["file_path"]}
