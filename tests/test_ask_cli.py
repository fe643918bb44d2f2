"""`qiuxue ask` contract: one question, or JSON lines on stdin with models loaded once."""

from __future__ import annotations

import io
import json

import pytest

from bot.cli import main as qiuxue

KEYS = {"question", "answer", "action", "region", "sources", "latency_ms", "related"}  # fields are only ever added


@pytest.fixture
def kb_env(kb_cfg, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QIUXUE__DATA_DIR", str(kb_cfg.data_path))


def test_one_question_as_json(kb_env, capsys) -> None:  # type: ignore[no-untyped-def]
    assert qiuxue(["ask", "--json", "--region", "广东", "学历补助一个人补多少钱"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == KEYS and out["action"] == "answer" and out["region"] == "广东"
    assert out["sources"] and set(out["sources"][0]) == {"id", "title", "region", "ref"}


def test_json_lines_stream_survives_bad_input(kb_env, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    lines = [{"question": "辞职了还能领吗", "region": None}, {"question": "北京能补多少", "region": None},
             {"question": "x" * 10_000, "region": "广东"}, {"question": "", "region": None},
             {"question": "🎉🎉", "region": None}]
    stdin = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\nnot json\n[1,2]\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert qiuxue(["ask", "--json", "-"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 7
    answers, errors = rows[:5], rows[5:]
    assert all(set(r) == KEYS for r in answers)
    assert all(r["action"] in ("answer", "no_answer") for r in answers)
    assert all(r["sources"] for r in answers if r["action"] == "answer")
    assert [r["action"] for r in answers[1:]] == ["no_answer"] * 4
    assert "10000" in answers[2]["answer"]  # the long paste is told why, in its own language
    assert all(any(w in r["answer"] for w in ("转人工", "请", "human", "Please")) for r in answers[1:])
    assert all("error" in e for e in errors)


def _run_stream(monkeypatch, capsysbinary, stdin: bytes) -> list[dict]:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    assert qiuxue(["ask", "--json", "-"]) == 0
    out = capsysbinary.readouterr().out
    return [json.loads(line) for line in out.decode("utf-8").splitlines()]  # strict UTF-8: raises if not


def test_json_lines_stream_answers_every_line_of_hostile_bytes(kb_env, capsysbinary, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bad = [b'{"question":"a\\ud800"}', b"\xff\xfe\xfd", b"[" * 5000 + b"]" * 5000, b"[1, 2]", b'"text"',
           b'{"question": {"a": 1}}', b'{"region": "\\u5e7f\\u4e1c"}', b"", b'{"question": "x", "region": 7}']
    good = '{"question": "广东能补多少钱"}'.encode()
    separators = '{"question": "广东\u2028能补\u0085多少钱"}'.encode()  # raw line breaks of other kinds
    rows = _run_stream(monkeypatch, capsysbinary,
                       b"\n".join([*bad, good, separators, b'{"question":"nul\\u0000?"}']) + b"\n")
    assert len(rows) == len(bad) + 3
    assert all(set(r) == {"error"} for r in rows[:len(bad)])
    messages = [r["error"] for r in rows[:len(bad)]]
    assert "surrogate" in messages[0] and "UTF-8" in messages[1] and "nested" in messages[2]
    assert "object" in messages[3] and "object" in messages[4] and '"question" must be a string' in messages[5]
    assert 'missing "question"' in messages[6] and "empty line" in messages[7] and '"region"' in messages[8]
    assert all(m.startswith(f"line {i}:") for i, m in enumerate(messages, 1))
    assert rows[len(bad)]["action"] == "answer" and set(rows[len(bad)]) == KEYS
    assert set(rows[-1]) == KEYS and "\x00" not in rows[-1]["question"]
