"""Text normalised at the edge is storable on SQLite and PostgreSQL, whatever was sent."""

from __future__ import annotations

import unicodedata

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, create_engine, insert, select
from sqlalchemy.exc import SQLAlchemyError

from bot.core.edge import clean_incoming
from bot.core.messages import Incoming
from bot.core.normalize import storable

NASTY = ["nul\x00inside", "lone \ud800 high", "lone \udfff low", "bell\x07 esc\x1b[31m del\x7f",
         "cr\r\nlf\rend", "e\u0301 decomposed", "pair \ud83d\ude00 joined", "\x00", "tab\tand\nnewline"]


@pytest.fixture(params=["sqlite", "postgresql"])
def table(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 't.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = create_engine(url)
    meta = MetaData()
    t = Table(f"normalize_probe_{request.param}", meta, Column("id", Integer, primary_key=True), Column("text", Text))
    meta.create_all(engine)
    yield engine, t
    meta.drop_all(engine)
    engine.dispose()


def test_raw_text_breaks_some_store_but_normalised_text_round_trips(table) -> None:  # type: ignore[no-untyped-def]
    engine, t = table
    raw_failures = 0
    for text in NASTY:
        try:
            with engine.begin() as conn:
                conn.execute(insert(t).values(text=text))
        except (SQLAlchemyError, UnicodeEncodeError):
            raw_failures += 1
    assert raw_failures >= 1  # each engine refuses at least one of these (NUL on PostgreSQL, surrogates on SQLite)
    with engine.begin() as conn:
        conn.execute(t.delete())
        for text in NASTY:
            conn.execute(insert(t).values(text=storable(text)))
    with engine.connect() as conn:
        stored = [row.text for row in conn.execute(select(t).order_by(t.c.id))]
    assert stored == [storable(x) for x in NASTY]


def test_storable_keeps_meaning_and_drops_only_what_no_store_takes() -> None:
    assert storable("nul\x00inside") == "nulinside"
    assert storable("lone \ud800 high") == "lone \ufffd high"
    assert storable("pair \ud83d\ude00 joined") == "pair 😀 joined"
    assert storable("cr\r\nlf\rend") == "cr\nlf\nend"
    assert storable("tab\tand\nnewline") == "tab\tand\nnewline"
    assert storable("e\u0301") == "\u00e9" and unicodedata.is_normalized("NFC", storable("e\u0301"))
    assert storable("bell\x07 esc\x1b[31m del\x7f") == "bell esc[31m del"
    assert storable("广东能补多少钱？") == "广东能补多少钱？" and storable(None) == ""


def test_incoming_is_cleaned_at_the_edge() -> None:
    msg = clean_incoming(Incoming("test", "u\x00", "电话13812345678\x00", display_name="张三 13912345678",
                                  button="fb:\ud800:1"))
    assert msg.text == "电话138****5678" and msg.display_name == "张三 139****5678"
    assert msg.button == "fb:\ufffd:1" and msg.user_id == "u"
