"""Chroma in client/server mode (`index.mode: http`): a real `chroma run` server on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.answering import Answerer
from ingest.refresh import refresh, rollback
from tests.conftest import PROJECT, make_config

CHROMA = Path(sys.executable).with_name("chroma")


@pytest.fixture
def chroma_server(tmp_path: Path, free_tcp_port: int):  # type: ignore[no-untyped-def]
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "CHROMA_ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen([str(CHROMA), "run", "--path", str(tmp_path / "chroma-server"), "--host", "127.0.0.1",
                             "--port", str(free_tcp_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{free_tcp_port}/api/v2/heartbeat", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "chroma server did not start"
            time.sleep(0.2)
        yield free_tcp_port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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
