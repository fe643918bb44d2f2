"""Faults with the real services: PostgreSQL restarted under a running `qiuxue serve` (a throw-away cluster of
our own, never the system one), and `qiuxue ingest` killed with SIGKILL at random moments."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.answering import ANSWER, Answerer
from bot.core.inbox import InboxItem, InboxStatus
from bot.i18n import t
from common.db import open_database
from common.settings import Config
from ingest.refresh import refresh
from ingest.versions import live_version
from tests.conftest import PROJECT, make_config
from tests.fakes.telegram_server import FakeBotApi
from tests.serving import free_port, qiuxue_serve
from tests.test_telegram import plain

pytestmark = pytest.mark.slow
PG_BIN = Path("/usr/lib/postgresql/15/bin")


class ThrowawayPostgres:
    """A PostgreSQL cluster of this test's own (initdb + pg_ctl as user postgres) on a free port."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="qiuxue-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, *args: str) -> None:
        """Run as postgres; output to a file, since a server started here would hold a pipe open."""
        with (self.dir / "pg_ctl.out").open("ab") as out:
            subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, stdout=out, stderr=out,
                           timeout=120)

    def start(self) -> ThrowawayPostgres:
        self._pg(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "start", "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off")
        return self

    def restart(self) -> None:
        self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "restart",
                 "-m", "fast")

    def stop(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w",
                        "stop", "-m", "immediate"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[ThrowawayPostgres]:
    pg = ThrowawayPostgres().start()
    try:
        yield pg
    finally:
        pg.stop()


def _wait_replies(fake: FakeBotApi, user: int, count: int, timeout: float = 90) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(fake.sent(user)) < count:
        assert time.monotonic() < deadline, f"{len(fake.sent(user))} of {count} replies"
        time.sleep(0.1)
    return [plain(r["text"]) for r in fake.sent(user)]


def test_postgresql_restarted_mid_conversation_loses_no_message_and_no_state(
        kb_cfg: Config, own_postgres: ThrowawayPostgres, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, QIUXUE__DATA_DIR=str(kb_cfg.data_path), QIUXUE__DATABASE__URL=own_postgres.url)
    refresh(cfg, by="pytest")  # the index versions live in this database too (vectors from the cache)
    user = 8101
    resend = plain(t("please_resend", "zh"))
    with FakeBotApi() as fake, qiuxue_serve(cfg, free_port(), fake):
        fake.send_text(user, "广东能补多少钱")
        assert "来源" in _wait_replies(fake, user, 1)[0]  # the conversation is about 广东 now
        for n, delay in enumerate((0.0, 0.05, 0.3)):  # the message stored, being handled, or being sent
            fake.send_text(user, "能补多少钱")  # no place named: answered only if 广东 was remembered
            time.sleep(delay)
            own_postgres.restart()
            reply = _wait_replies(fake, user, n + 2)[-1]
            assert "来源" in reply or reply == resend, reply  # answered after reconnect, or asked to resend
        time.sleep(1.0)  # a doubled reply would arrive now
        replies = _wait_replies(fake, user, 4)
    assert len(replies) == 4, replies
    assert any("来源" in r for r in replies[1:])  # the remembered place survived the restarts
    with open_database(cfg)() as s:
        statuses = list(s.scalars(select(InboxItem.status).where(InboxItem.key == f"telegram:{user}")))
    assert len(statuses) == 4 and InboxStatus.PENDING not in statuses  # none left unhandled


def test_kill9_of_ingest_at_random_moments_keeps_the_live_version_serving(small_kb: Path, tmp_path: Path) -> None:
    """20 runs of `qiuxue ingest` on a small KB, each killed at a random moment; a running answerer answers
    throughout, and the next run succeeds."""
    dictionary = str(PROJECT / "tests" / "data" / "kb-dictionary")
    cfg = make_config(tmp_path, QIUXUE__KNOWLEDGE__DICTIONARY_DIR=dictionary, QIUXUE__INDEX__RELOAD_CHECK_SECONDS="0")
    assert refresh(cfg, [str(small_kb)], by="pytest").switched
    answerer = Answerer(cfg)
    assert answerer.ask("甲省补多少钱").action == ANSWER
    env = {"QIUXUE__DATA_DIR": str(cfg.data_path), "QIUXUE__KNOWLEDGE__DICTIONARY_DIR": dictionary}
    command = [sys.executable, "-m", "bot.cli", "ingest", "--by", "pytest", str(small_kb)]
    rng = random.Random(13)
    policy = small_kb / "policies" / "beta.md"
    original = policy.read_text(encoding="utf-8")
    for run in range(20):
        policy.write_text(original + f"\n<!-- run {run} -->\n", encoding="utf-8")  # every run has work to do
        proc = subprocess.Popen(command, cwd=PROJECT, env=_env(env), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 6.0))
        proc.kill()
        proc.wait(30)
        assert answerer.ask("甲省补多少钱").action == ANSWER, f"run {run}: the live version stopped answering"
    done = subprocess.run(command, cwd=PROJECT, env=_env(env), capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert answerer.ask("甲省补多少钱").action == ANSWER
    live = live_version(open_database(cfg))
    assert live is not None


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "NO_PROXY": "127.0.0.1,localhost", **extra}
