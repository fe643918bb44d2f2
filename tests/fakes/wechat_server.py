"""A fake WeChat platform on 127.0.0.1: the API server the bot calls, and the side that posts callbacks to it.

API (what the bot calls, the platform's own paths):
- `GET /cgi-bin/token?grant_type=client_credential&appid=…&secret=…` → {"access_token", "expires_in"};
  a wrong AppID/secret gets 40013/40125.
- `POST /cgi-bin/message/custom/send?access_token=…` (客服消息): an unknown token gets 40001, an expired
  one 42001; a worker who has not written for 48 hours (or never) 45015; text over 2,048 bytes 45002.
  `fail_next(errcode)` scripts a refusal; `expire_tokens()` expires every token issued so far.
- `POST /cgi-bin/menu/create`.

Platform (what WeChat posts): `post_text`, `post_event`, `post_message` sign the callback like WeChat
(sha1 of token, timestamp, nonce; in safe mode the body AES-encrypted with wechatpy's WeChatCrypto and
`msg_signature`), wait at most 5 seconds like WeChat, and check a passive reply the way WeChat does —
in safe mode its MsgSignature and encryption (and AppID) via WeChatCrypto — then that it is a text
reply from the account to that worker, under 2,048 bytes. `Delivery` says what came back.

Try the bot by hand (README: WeChat): `python -m tests.fakes.wechat_server --port 8090` prints the
environment to start `qiuxue serve` with, then posts each line you type as a worker's message and
prints the passive reply or the customer-service message that came instead.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import xmltodict
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

APP_ID = "wxfa4e0c0de0123456"
SECRET = "fake-app-secret-0123456789abcdef"
TOKEN = "fakeCallbackToken42"
ACCOUNT = "gh_fakeaccount01"
WINDOW = 48 * 3600
TEXT_LIMIT = 2048
WECHAT_WAITS = 5.0


@dataclass
class Delivery:
    status: int | None  # None: no answer within WeChat's 5 seconds (or no server, or the connection died)
    body: str
    seconds: float
    reply: str | None  # the passive reply's text (checked), or None for "success"/""


class FakeWechat:
    def __init__(self, aes: bool = True, port: int = 0, aes_key: str = "") -> None:
        self.aes_key = (aes_key or base64.b64encode(os.urandom(32)).decode().rstrip("=")) if aes else ""
        self.crypto = WeChatCrypto(TOKEN, self.aes_key, APP_ID) if aes else None
        self.lock = threading.Lock()
        self.tokens: dict[str, float] = {}  # token → expiry (epoch seconds)
        self.token_requests = 0
        self.sent: list[dict[str, Any]] = []  # accepted customer-service messages
        self.refused: list[tuple[int, dict[str, Any]]] = []
        self.passive: list[tuple[str, str]] = []  # (openid, text) of checked passive replies
        self.interactions: dict[str, float] = {}
        self.menus: list[dict[str, Any]] = []
        self._fail: list[int] = []
        self._msg_id = int(time.time() * 1000)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeWechat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def secrets(self) -> dict[str, str]:
        """What the bot reads from WECHAT_APP_ID, WECHAT_APP_SECRET, WECHAT_TOKEN, WECHAT_AES_KEY."""
        return {"WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": SECRET, "WECHAT_TOKEN": TOKEN,
                "WECHAT_AES_KEY": self.aes_key}

    # -- scripting ---------------------------------------------------------------------------------------
    def fail_next(self, errcode: int) -> None:
        with self.lock:
            self._fail.append(errcode)

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = {t: 0.0 for t in self.tokens}

    def forget(self, openid: str) -> None:
        """The worker's last message is older than 48 hours, as far as WeChat knows."""
        with self.lock:
            self.interactions[openid] = time.time() - WINDOW - 60

    def sent_to(self, openid: str) -> list[str]:
        with self.lock:
            return [m["text"]["content"] for m in self.sent if m.get("touser") == openid]

    def passive_to(self, openid: str) -> list[str]:
        with self.lock:
            return [text for who, text in self.passive if who == openid]

    # -- the API -----------------------------------------------------------------------------------------
    def _token(self, query: dict[str, str]) -> dict[str, Any]:
        if query.get("appid") != APP_ID:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if query.get("secret") != SECRET or query.get("grant_type") != "client_credential":
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        with self.lock:
            self.token_requests += 1
            token = f"ACCESS_{self.token_requests}_{uuid.uuid4().hex}"
            self.tokens[token] = time.time() + 7200
        return {"access_token": token, "expires_in": 7200}

    def _check_token(self, query: dict[str, str]) -> dict[str, Any] | None:
        expiry = self.tokens.get(query.get("access_token", ""))
        if expiry is None:
            return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
        if expiry < time.time():
            return {"errcode": 42001, "errmsg": "access_token expired"}
        return None

    def _custom_send(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            error = self._check_token(query)
            if error is None and self._fail:
                code = self._fail.pop(0)
                error = {"errcode": code, "errmsg": f"scripted failure {code}"}
            if error is None:
                error = self._check_message(body)
            if error is not None:
                self.refused.append((error["errcode"], body))
                return error
            self.sent.append(body)
        return {"errcode": 0, "errmsg": "ok"}

    def _check_message(self, body: dict[str, Any]) -> dict[str, Any] | None:
        if body.get("msgtype") != "text" or not isinstance(body.get("text"), dict):
            return {"errcode": 40008, "errmsg": "invalid message type"}
        content = str(body["text"].get("content") or "")
        if not content.strip():
            return {"errcode": 44003, "errmsg": "empty content"}
        if len(content.encode("utf-8")) > TEXT_LIMIT:
            return {"errcode": 45002, "errmsg": "content size out of limit"}
        last = self.interactions.get(str(body.get("touser")))
        if last is None or time.time() - last > WINDOW:
            return {"errcode": 45015, "errmsg": "response out of time limit or subscription is canceled"}
        return None

    def _menu(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            error = self._check_token(query)
            if error is None:
                self.menus.append(body)
        return error or {"errcode": 0, "errmsg": "ok"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, result: dict[str, Any]) -> None:
                data = json.dumps(result, ensure_ascii=False).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path != "/cgi-bin/token":
                    self.send_error(404)
                    return
                self._answer(fake._token(dict(parse_qsl(url.query))))

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                query = dict(parse_qsl(url.query))
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw.decode("utf-8"))
                except ValueError:
                    self._answer({"errcode": 47001, "errmsg": "data format error"})
                    return
                if url.path == "/cgi-bin/message/custom/send":
                    self._answer(fake._custom_send(query, body))
                elif url.path == "/cgi-bin/menu/create":
                    self._answer(fake._menu(query, body))
                else:
                    self.send_error(404)

        return Handler

    # -- the platform posting callbacks ---------------------------------------------------------------
    def next_msg_id(self) -> int:
        with self.lock:
            self._msg_id += 1
            return self._msg_id

    def message(self, openid: str, msg_type: str, **fields: Any) -> dict[str, Any]:
        """A callback message as WeChat sends it (a new MsgId unless given)."""
        base = {"ToUserName": ACCOUNT, "FromUserName": openid, "CreateTime": str(int(time.time())),
                "MsgType": msg_type}
        if msg_type != "event":
            base["MsgId"] = str(fields.pop("MsgId", None) or self.next_msg_id())
        return {**base, **fields}

    def signed(self, url: str, message: dict[str, Any] | str, timestamp: int | None = None,
               signature: str | None = None) -> tuple[str, bytes]:
        """The callback URL with WeChat's query parameters, and the body (encrypted in safe mode); a str
        message is sent as it is (to test what the bot does with XML that is not a message)."""
        ts, nonce = str(timestamp or int(time.time())), uuid.uuid4().hex[:10]
        signer = WeChatSigner()
        signer.add_data(TOKEN, ts, nonce)
        query = {"signature": signature or signer.signature, "timestamp": ts, "nonce": nonce}
        xml = message if isinstance(message, str) else xmltodict.unparse({"xml": message}, full_document=False)
        if self.crypto is None:
            return f"{url}?{urlencode(query)}", xml.encode("utf-8")
        sealed = xmltodict.parse(self.crypto.encrypt_message(xml, nonce, ts))["xml"]
        query.update(encrypt_type="aes", msg_signature=sealed["MsgSignature"])
        body = xmltodict.unparse({"xml": {"ToUserName": ACCOUNT, "Encrypt": sealed["Encrypt"]}}, full_document=False)
        return f"{url}?{urlencode(query)}", body.encode("utf-8")

    def post_message(self, url: str, message: dict[str, Any]) -> Delivery:
        """Post one callback as WeChat does and check what comes back."""
        full, body = self.signed(url, message)
        with self.lock:
            self.interactions[message["FromUserName"]] = time.time()
        return self.post_raw(full, body, message["FromUserName"])

    def post_text(self, url: str, openid: str, content: str, msg_id: int | None = None) -> Delivery:
        return self.post_message(url, self.message(openid, "text", Content=content, MsgId=msg_id))

    def post_event(self, url: str, openid: str, event: str, key: str | None = None) -> Delivery:
        fields = {"Event": event, **({"EventKey": key} if key is not None else {})}
        return self.post_message(url, self.message(openid, "event", **fields))

    def post_raw(self, url: str, body: bytes, openid: str = "") -> Delivery:
        started = time.monotonic()
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "text/xml"})
        try:
            with urllib.request.urlopen(request, timeout=WECHAT_WAITS) as r:
                status, text = r.status, r.read().decode("utf-8")
        except urllib.error.HTTPError as err:
            return Delivery(err.code, err.read().decode("utf-8", "replace"), time.monotonic() - started, None)
        except (OSError, http.client.HTTPException):  # no answer in time, refused, reset: WeChat retries
            return Delivery(None, "", time.monotonic() - started, None)
        seconds = time.monotonic() - started
        reply = None if text.strip() in ("", "success") else self.check_reply(text, openid)
        return Delivery(status, text, seconds, reply)

    def post_oversized(self, url: str, body: bytes) -> Delivery:
        """A body too big for any callback, sent as a careful client sends one (`Expect: 100-continue`): the
        headers first, and the body only if the server asks for it. A server that refuses by Content-Length
        answers at once; one that starts reading gets the body. (Sending it all unasked races the server's
        early 413 against a broken pipe.)"""
        started, parts = time.monotonic(), urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=WECHAT_WAITS)
        try:
            conn.putrequest("POST", f"{parts.path}?{parts.query}")
            for name, value in (("Content-Type", "text/xml"), ("Content-Length", str(len(body))),
                                ("Expect", "100-continue")):
                conn.putheader(name, value)
            conn.endheaders()
            assert conn.sock is not None
            conn.sock.settimeout(2)
            try:
                interim = conn.sock.recv(64, socket.MSG_PEEK)
            except TimeoutError:
                interim = b""
            conn.sock.settimeout(WECHAT_WAITS)
            if not interim or b" 100 " in interim.split(b"\r\n", 1)[0]:
                conn.send(body)  # asked for (or no early answer): the server reads it
            response = conn.getresponse()
            return Delivery(response.status, response.read().decode("utf-8", "replace"),
                            time.monotonic() - started, None)
        finally:
            conn.close()

    def check_reply(self, text: str, openid: str) -> str:
        """A passive reply checked as WeChat checks it; its text. Raises AssertionError if WeChat would reject it."""
        if self.crypto is not None:
            sealed = xmltodict.parse(text)["xml"]
            text = self.crypto.decrypt_message(text, sealed["MsgSignature"], sealed["TimeStamp"], sealed["Nonce"])
        reply = xmltodict.parse(text)["xml"]
        assert reply.get("ToUserName") == openid, reply
        assert reply.get("FromUserName") == ACCOUNT, reply
        assert reply.get("MsgType") == "text" and str(reply.get("CreateTime", "")).isdigit(), reply
        content = str(reply.get("Content") or "")
        assert content.strip() and len(content.encode("utf-8")) <= TEXT_LIMIT, content
        with self.lock:
            self.passive.append((openid, content))
        return content


def main() -> None:
    """A worker typing to `qiuxue serve` through this fake WeChat (safe mode)."""
    parser = argparse.ArgumentParser(description="fake WeChat for a local try-out of `qiuxue serve`")
    parser.add_argument("--port", type=int, default=8090, help="the fake API's port")
    parser.add_argument("--callback", default="http://127.0.0.1:8080/wechat", help="the bot's callback URL")
    parser.add_argument("--user", default="o-local-tester", help="the worker's openid")
    args = parser.parse_args()
    with FakeWechat(aes=True, port=args.port) as fake:
        env = {**fake.secrets, "QIUXUE__WECHAT__API_BASE_URL": fake.base_url}
        print("Start the bot in another terminal with:\n  " + " ".join(f"{k}={v}" for k, v in env.items())
              + " qiuxue serve\nThen type messages here (Ctrl-D ends).", flush=True)
        input("Press Enter once it is up (the worker then follows the account).")
        print(fake.post_event(args.callback, args.user, "subscribe").reply or "(no passive reply)")
        while True:
            before = len(fake.sent_to(args.user))
            try:
                line = input("> ")
            except EOFError:
                return
            got = fake.post_text(args.callback, args.user, line) if line.strip() else None
            if got is not None and got.reply is not None:
                print(f"[passive reply, {got.seconds * 1000:.0f} ms]\n{got.reply}")
            time.sleep(0.5)
            for text in fake.sent_to(args.user)[before:]:
                print(f"[客服消息]\n{text}")


if __name__ == "__main__":
    main()
