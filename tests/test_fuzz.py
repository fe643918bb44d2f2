"""Property-based fuzzing (hypothesis): nothing a worker, a tool or an editor sends crashes anything.

Covered: the dialogue core (random text, commands, media kinds and presses of offered buttons,
on SQLite and PostgreSQL), `ask --json -` lines, `check` profiles, and knowledge-file loading.
About 2,900 cases by default; QIUXUE_FUZZ_EXAMPLES=N multiplies each
property's examples by N/100 for a long run, e.g. QIUXUE_FUZZ_EXAMPLES=10000.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from argparse import Namespace
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.ask import _stream
from bot.ask_request import BadLine, parse_request
from bot.check import cmd_check, load_rules
from bot.core.dialogue import Dialogue
from bot.core.messages import BUTTON, EDITED, UNSUPPORTED, Incoming, Outgoing
from bot.eligibility import ProfileError
from common.settings import Config
from ingest.loaders import load_faq, load_markdown
from ingest.schema import KnowledgeFileError
from tests.conftest import unique_user

SCALE = int(os.environ.get("QIUXUE_FUZZ_EXAMPLES", "100")) / 100


def fuzz(examples: int):  # type: ignore[no-untyped-def]
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, derandomize="QIUXUE_FUZZ_EXAMPLES" not in os.environ,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


ANY_CHAR = st.characters(codec=None, exclude_categories=())  # surrogates, NUL, controls included
WORDS = st.sampled_from(["广东", "能补多少钱", "转人工", "我能不能申请", "是", "否", "身份证440106199001011234",
                         "13812345678", "本科", "专科", "深圳", "北京", "重庆", "how much", "🎉", "\x00", "\ud800",
                         "我在广州", "会员", "30", "-1", "99999999999999999999", "2024-09-01"])
SHORT_TEXT = st.one_of(st.text(ANY_CHAR, max_size=40), st.lists(WORDS, min_size=1, max_size=4).map("".join))
TEXT = st.one_of(SHORT_TEXT, st.text(ANY_CHAR, min_size=601, max_size=700))  # long pastes are refused
COMMANDS = st.sampled_from(["/start", "/help", "/check", "/apply", "/region", "/lang", "/cancel", "/stop",
                            "/human", "/bot", "/reset", "/forget", "/unknown", "/start@qiuxue_bot x"])
MEDIA = st.sampled_from(["sticker", "photo", "voice", "file", "video", "location", "", "\x00"])
ACTION = st.one_of(TEXT.map(lambda t: ("text", t)), COMMANDS.map(lambda t: ("text", t)),
                   MEDIA.map(lambda m: ("media", m)), TEXT.map(lambda t: ("edited", t)),
                   st.integers(0, 20).map(lambda i: ("press", i)))

_dialogues: dict[str, Dialogue] = {}


def dialogue_for(cfg: Config) -> Dialogue:
    key = str(cfg.database.url or "sqlite")
    if key not in _dialogues:
        _dialogues[key] = Dialogue(cfg)
    return _dialogues[key]


def _message(user: str, action: tuple[str, object], offered: list[str]) -> Incoming:
    kind, value = action
    if kind == "media":
        return Incoming("fuzz", user, kind=UNSUPPORTED, media=str(value))
    if kind == "edited":
        return Incoming("fuzz", user, str(value), kind=EDITED)
    if kind == "press" and offered:
        return Incoming("fuzz", user, kind=BUTTON, button=offered[int(value) % len(offered)])  # type: ignore[call-overload]
    return Incoming("fuzz", user, str(value), display_name=str(value)[:30])


def test_the_dialogue_core_answers_whatever_it_is_sent(db_cfg: Config) -> None:
    dialogue = dialogue_for(db_cfg)

    @fuzz(25)
    @given(st.lists(ACTION, min_size=1, max_size=4))
    def conversation(actions: list[tuple[str, object]]) -> None:
        user, offered = unique_user("fz"), []
        for action in actions:
            replies = dialogue.handle(_message(user, action, offered))
            assert isinstance(replies, list) and all(isinstance(r, Outgoing) and isinstance(r.text, str)
                                                     for r in replies)
            offered = [b.data for r in replies for row in r.buttons for b in row] or offered
            assert all(len(d.encode("utf-8")) <= 64 for d in offered)

    conversation()


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(ANY_CHAR, max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=8)
LINE_BYTES = st.one_of(
    st.binary(max_size=60),
    st.builds(lambda q, r: json.dumps({"question": q, "region": r}).encode(), SHORT_TEXT, st.none() | WORDS),
    st.builds(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass"), JSON_VALUES),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
).map(lambda b: b.replace(b"\n", b" "))


@fuzz(1500)
@given(LINE_BYTES)
def test_every_ask_line_is_a_request_or_a_clear_error(raw: bytes) -> None:
    try:
        request = parse_request(raw)
    except BadLine as exc:
        assert str(exc)
        return
    request.question.encode("utf-8")  # what is answered is always valid text
    assert "\x00" not in request.question


def test_ask_stream_writes_one_utf8_line_per_input_line(answerer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    @fuzz(5)
    @given(st.lists(LINE_BYTES, min_size=1, max_size=40))
    def stream(lines: list[bytes]) -> None:
        out = io.StringIO()
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\n".join(lines) + b"\n"), encoding="utf-8"))
        with contextlib.redirect_stdout(out):
            assert _stream(answerer, "hybrid") == 0
        rows = out.getvalue().encode("utf-8").decode("utf-8").splitlines()
        assert len(rows) == len(lines)
        assert all(set(json.loads(r)) in ({"error"}, {"question", "answer", "action", "region", "sources",
                                                      "related", "latency_ms"}) for r in rows)

    stream()


@pytest.fixture(scope="module")
def rules(kb_cfg: Config):  # type: ignore[no-untyped-def]
    return load_rules(kb_cfg)


def test_check_never_crashes_on_any_profile(rules, kb_cfg: Config) -> None:  # type: ignore[no-untyped-def]
    fields = st.sampled_from([*rules.fields, "other"])
    places = st.sampled_from([*rules.by_place, "广州市", "北京", "全国", "nowhere"])
    values = st.one_of(JSON_VALUES, places, st.sampled_from(["是", "否", "true", "2024-09-01", "本科", "30"]))
    profiles = st.dictionaries(fields, values, max_size=8).flatmap(
        lambda p: st.builds(lambda r: {**p, "region": r} if r is not None else p, st.none() | places))

    @fuzz(800)
    @given(profiles)
    def check_profile(profile: dict) -> None:
        try:
            verdict = rules.check(profile)
        except ProfileError:
            return
        data = verdict.as_json("en")
        assert data["eligible"] in ("yes", "no", "unknown")
        json.dumps(data, ensure_ascii=False)

    check_profile()

    @fuzz(40)
    @given(JSON_VALUES)
    def check_cli(value: object) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cmd_check(kb_cfg, Namespace(profile=json.dumps(value), json=True, lang="zh"))
        result = json.loads(out.getvalue())
        assert (code, set(result) == {"error"}) in ((2, True), (0, False))

    check_cli()


FAQ_KEYS = ["id", "region", "scope", "year", "sources", "docs", "covers", "question", "question_en", "phrasings",
            "answer", "answer_en", "gap", "typo"]
ENTRY = st.dictionaries(st.sampled_from(FAQ_KEYS), JSON_VALUES | st.sampled_from(["faq-x", "全国", "national"]),
                        max_size=10)
FAQ_DATA = st.one_of(st.lists(ENTRY, max_size=3), JSON_VALUES)


def test_knowledge_files_load_or_are_refused_by_name(tmp_path: Path) -> None:
    faq, md = tmp_path / "f.yaml", tmp_path / "p.md"

    @fuzz(300)
    @given(FAQ_DATA)
    def faq_file(data: object) -> None:
        faq.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8", errors="surrogatepass")
        try:
            docs = load_faq(faq, "f.yaml")
        except KnowledgeFileError as exc:
            assert str(exc)
            return
        except UnicodeError:
            return  # a file that is not UTF-8 is named by load_paths as unreadable
        for doc in docs:  # what loads is exactly what the bot relies on
            assert isinstance(doc.meta["question"], str) and isinstance(doc.meta.get("sources", []), list)
            assert all(isinstance(p, str) for p in doc.meta.get("phrasings", []))

    @fuzz(300)
    @given(st.dictionaries(st.sampled_from(["id", "title", "scope", "region", "covers", "year", "sources", "gap",
                                            "effective"]), JSON_VALUES, max_size=8), st.text(max_size=40))
    def policy_file(meta: dict, body: str) -> None:
        md.write_text(f"---\n{yaml.safe_dump(meta, allow_unicode=True)}---\n{body}", encoding="utf-8",
                      errors="surrogatepass")
        try:
            load_markdown(md, "p.md")
        except (KnowledgeFileError, UnicodeError):
            return
        except yaml.YAMLError:
            return  # front matter that is not YAML: named by load_paths

    faq_file()
    policy_file()
