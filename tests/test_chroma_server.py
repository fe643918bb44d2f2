"""Chroma in client/server mode (`index.mode: http`): a real `chroma run` server on 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.answering import Answerer
from bot.channels.inprocess import InProcessChat
from bot.core.dialogue import Dialogue
from ingest.refresh import refresh, rollback
from tests.conftest import PROJECT, make_config, unique_user
from tests.serving import ChromaServer


@pytest.fixture
def chroma_server(tmp_path: Path, free_tcp_port: int) -> Iterator[int]:
    with ChromaServer(tmp_path / "chroma-server", free_tcp_port):
        yield free_tcp_port


def test_ingest_and_answer_through_a_chroma_server(tmp_path: Path, small_kb: Path, chroma_server: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    cfg = make_config(tmp_path, QIUXUE__INDEX__MODE="http", QIUXUE__INDEX__PORT=str(chroma_server),
                      QIUXUE__INDEX__RELOAD_CHECK_SECONDS="0",
                      QIUXUE__KNOWLEDGE__DICTIONARY_DIR=str(PROJECT / "tests" / "data" / "kb-dictionary"))
    first = refresh(cfg, [str(small_kb)])
    assert first.switched and first.chunks > 0
    assert not (cfg.data_path / "chroma").exists()  # vectors live on the server, not on disk here
    bot = Answerer(cfg)
    assert any(h.chunk.doc_id == "alpha" for h in bot.retrieve("甲省补多少钱").hits)
    (small_kb / "policies" / "alpha.md").unlink()
    second = refresh(cfg, [str(small_kb)])
    assert second.removed == 1
    assert not any(h.chunk.doc_id == "alpha" for h in bot.retrieve("甲省补多少钱").hits)
    assert rollback(cfg).version == first.version
    assert any(h.chunk.doc_id == "alpha" for h in bot.retrieve("甲省补多少钱").hits)


UNAVAILABLE = "知识库暂时连不上"
ALPHA = "一千元"  # in the answer to 甲省补多少钱 (tests/data/kb/policies/alpha.md)


def _answered_or_unavailable(chat: InProcessChat, question: str) -> str:
    """The reply to a question: the right answer, or the clear "unavailable, ask a person" with the helpdesk
    button — never an error, silence or another answer."""
    replies = chat.say(question)
    assert len(replies) == 1
    text = replies[0].text
    if UNAVAILABLE in text:
        assert "转人工" in [b.label for b in chat.buttons]
        return "unavailable"
    assert ALPHA in text, text
    return "answered"


def _dictionary_with_test_places(tmp_path: Path) -> Path:
    """The shipped dictionary (intents, handoff words … for the dialogue) plus the small KB's places."""
    target = tmp_path / "dictionary"
    shutil.copytree(PROJECT / "knowledge" / "dictionary", target)
    for name in ("regions.yaml", "userdict.txt"):
        extra = (PROJECT / "tests" / "data" / "kb-dictionary" / name).read_text(encoding="utf-8")
        with (target / name).open("a", encoding="utf-8") as f:
            f.write("\n" + extra)
    return target


@pytest.mark.slow
def test_a_stopped_chroma_server_gets_a_clear_reply_the_helpdesk_works_and_answering_resumes(
        tmp_path: Path, small_kb: Path, free_tcp_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    cfg = make_config(tmp_path, QIUXUE__INDEX__MODE="http", QIUXUE__INDEX__PORT=str(free_tcp_port),
                      QIUXUE__INDEX__RELOAD_CHECK_SECONDS="0",
                      QIUXUE__KNOWLEDGE__DICTIONARY_DIR=str(_dictionary_with_test_places(tmp_path)))
    server = ChromaServer(tmp_path / "chroma-server", free_tcp_port).start()
    try:
        assert refresh(cfg, [str(small_kb)]).switched
        running = InProcessChat(Dialogue(cfg), unique_user("chr"))
        assert _answered_or_unavailable(running, "甲省补多少钱") == "answered"
        server.stop()
        # a bot already running: answers from what it holds, or says so clearly
        _answered_or_unavailable(running, "甲省补多少钱")
        # a bot started while the server is down, without the version's served copy (ingest/index_copy.py:
        # with it a bot starts without Chroma), cannot have the index: the unavailable path itself
        shutil.rmtree(cfg.data_path / "served")
        started_now = InProcessChat(Dialogue(cfg), unique_user("chr"))
        assert _answered_or_unavailable(started_now, "甲省补多少钱") == "unavailable"
        started_now.press("转人工")  # the helpdesk does not need the index
        assert "排第" in started_now.text
        started_now.say("/bot")
        server.start()  # back: the next question is answered, nobody restarted anything
        assert _answered_or_unavailable(started_now, "甲省补多少钱") == "answered"
        assert _answered_or_unavailable(running, "甲省补多少钱") == "answered"
    finally:
        server.stop()
