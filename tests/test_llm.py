"""The optional language model: used when it cites the passages, ignored when it fails or doesn't."""

from __future__ import annotations

import pytest

from bot.answering import ANSWER, Answerer
from tests.conftest import make_config
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture
def fake_llm():  # type: ignore[no-untyped-def]
    with FakeOpenAI() as server:
        yield server


def llm_answerer(kb_cfg, tmp_path, server, monkeypatch, timeout: str = "3") -> Answerer:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QIUXUE_LLM_API_KEY", "test-key")
    cfg = make_config(tmp_path, QIUXUE__DATA_DIR=str(kb_cfg.data_path), QIUXUE__LLM__BASE_URL=server.base_url,
                      QIUXUE__LLM__MODEL="fake-model", QIUXUE__LLM__TIMEOUT_SECONDS=timeout)
    return Answerer(cfg)


def test_a_cited_rephrasing_is_used(kb_cfg, tmp_path, fake_llm, monkeypatch, no_network) -> None:  # type: ignore[no-untyped-def]
    fake_llm.reply = "广东每人一次性补助1,000元[1]。"
    a = llm_answerer(kb_cfg, tmp_path, fake_llm, monkeypatch).ask("广东能补多少钱")
    assert a.action == ANSWER and a.answer.startswith("广东每人一次性补助1,000元[1]")
    assert "来源：[1]《" in a.answer and len(a.sources) == 1
    request = fake_llm.requests[0]
    assert request["auth"] == "Bearer test-key" and request["body"]["model"] == "fake-model"
    prompt = str(request["body"]["messages"])
    assert "广东能补多少钱" in prompt and "[1]" in prompt  # the passages went to the model, numbered
    assert no_network == []


@pytest.mark.parametrize("behaviour", ["http_error", "no_citation", "timeout"])
def test_failures_fall_back_to_the_offline_answer(kb_cfg, tmp_path, fake_llm, monkeypatch, behaviour) -> None:  # type: ignore[no-untyped-def]
    offline = Answerer(kb_cfg).ask("广东能补多少钱")
    fake_llm.reply = "广东补很多钱，大概一万元。"  # no citation: must not be shown
    if behaviour == "http_error":
        fake_llm.status = 500
    if behaviour == "timeout":  # a cited reply, had the bot waited 30 s for it
        fake_llm.delay = 30
        fake_llm.reply = "广东补1,000元[1]。"
    bot = llm_answerer(kb_cfg, tmp_path, fake_llm, monkeypatch, timeout="1")
    a = bot.ask("广东能补多少钱")
    assert fake_llm.requests, "the model was asked"
    assert a.answer == offline.answer and a.action == ANSWER
    assert a.latency_ms < 15000  # it gave up on the model (timeout 1 s) long before the model answered
