"""Outbox claims shared by several serving processes: one head per address, the claiming slot recorded, and a
restarted slot recovering only its own unfinished sends (SQLite's compare-and-set path and PostgreSQL's
SKIP LOCKED statement behave the same)."""

from __future__ import annotations

from pathlib import Path

import pytest

import bot.helpdesk.store  # noqa: F401  (the outbox's foreign key names its table)
from bot.core.outbox import Outbox, OutboxItem, OutboxStatus
from common.db import open_database
from tests.conftest import make_config, unique_user


@pytest.fixture(params=["sqlite", "postgresql"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Outbox:
    """An outbox on SQLite or on the session's PostgreSQL database (no index needed)."""
    extra = {"QIUXUE__DATABASE__URL": request.getfixturevalue("pg_url")} if request.param == "postgresql" else {}
    return Outbox(open_database(make_config(tmp_path, **extra)))


def test_claims_take_one_head_per_address_and_record_the_slot(outbox: Outbox) -> None:
    channel = unique_user("chan")
    with outbox.sessions.begin() as s:
        a = [outbox.add(s, channel, "a", {"text": f"a{n}"}).id for n in range(3)]
        b = outbox.add(s, channel, "b", {"text": "b0"}).id
    first = outbox.claim({channel}, owner="host:1/0")
    assert [c.id for c in first] == [a[0], b] and all(c.attempts == 1 for c in first)
    assert outbox.claim({channel}, owner="host:1/1") == []  # heads are being sent; the rest wait their turn
    outbox.sent(a[0], "m1")
    second = outbox.claim({channel}, owner="host:1/1")
    assert [c.id for c in second] == [a[1]]
    with outbox.sessions() as s:
        owners = {r.id: r.claimed_by for r in s.query(OutboxItem).filter(OutboxItem.channel == channel)}
    assert owners == {a[0]: "host:1/0", a[1]: "host:1/1", a[2]: "", b: "host:1/0"}


def test_a_restarted_slot_recovers_only_its_own_sends(outbox: Outbox) -> None:
    channel = unique_user("chan")
    with outbox.sessions.begin() as s:
        mine, theirs = outbox.add(s, channel, "a", {"text": "x"}).id, outbox.add(s, channel, "b", {"text": "y"}).id
    assert [c.id for c in outbox.claim({channel}, limit=1, owner="host:1/0")] == [mine]
    assert [c.id for c in outbox.claim({channel}, owner="host:1/1")] == [theirs]
    assert outbox.recover({channel}, owner="host:1/0") == [mine]
    assert outbox.get(mine).status == OutboxStatus.UNCERTAIN
    assert outbox.get(theirs).status == OutboxStatus.SENDING  # a live sibling is sending it: left alone
