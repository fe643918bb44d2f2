"""Shared fixtures: an isolated config per test, a no-network guard, and a small knowledge base."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.settings import DEFAULT_CONFIG, Config, load_config

PROJECT = Path(__file__).resolve().parent.parent
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", ""}


class NetworkBlocked(AssertionError):
    """A test opened a connection to something other than this machine."""


def _is_local(address: object) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) and address else ""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fail the test on any connection or name lookup that leaves 127.0.0.1; returns the attempts."""
    attempts: list[object] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def guarded(real):  # type: ignore[no-untyped-def]
        def connect(self, address):  # type: ignore[no-untyped-def]
            if not _is_local(address):
                attempts.append(address)
                raise NetworkBlocked(f"network access to {address!r} during a test")
            return real(self, address)
        return connect

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        if name not in LOOPBACK_NAMES and not _is_local((name,)):
            attempts.append(name)
            raise NetworkBlocked(f"name lookup of {name!r} during a test")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(real_connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


def make_config(tmp_path: Path, **overrides: str) -> Config:
    """The project's config.yaml with data_dir in tmp_path and any QIUXUE__ overrides."""
    env = {"QIUXUE__DATA_DIR": str(tmp_path / "data"),
           "QIUXUE__CHAT__RATE_LIMIT_MESSAGES": "1000",  # tests type fast; the flood test sets its own
           **overrides}
    return load_config(DEFAULT_CONFIG, environ=env)


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
def small_kb(tmp_path: Path) -> Path:
    """A copy of tests/data/kb (three policy docs and a FAQ file) that tests may edit."""
    target = tmp_path / "kb"
    shutil.copytree(PROJECT / "tests" / "data" / "kb", target)
    return target


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Held by one process at a time (the xdist workers of this run)."""
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def kb_cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The shipped knowledge base, indexed once per test session with the default embedder.

    Built as `qiuxue ingest` builds it (with the serving check, which also embeds the FAQ phrasings). The
    test workers of one run share the vectors: the first worker builds, the others wait for it and start
    from its vector cache, so the model embeds the knowledge base once per run, not once per worker.
    """
    from bot.smoke import serving_check
    from ingest.refresh import refresh

    cfg = make_config(tmp_path_factory.mktemp("kb"))
    base = tmp_path_factory.getbasetemp()
    run_dir = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # shared by this run's workers
    shared = run_dir / "kb-vectors"
    with exclusive(run_dir / "kb-vectors.lock"):
        if shared.is_dir():
            shutil.copytree(shared, cfg.data_path / "cache")
        refresh(cfg, by="pytest", candidate_check=serving_check)
        if not shared.is_dir():
            shutil.copytree(cfg.data_path / "cache", run_dir / "kb-vectors.tmp")
            (run_dir / "kb-vectors.tmp").rename(shared)
    return cfg


@pytest.fixture(scope="session")
def answerer(kb_cfg: Config):  # type: ignore[no-untyped-def]
    from bot.answering import Answerer

    return Answerer(kb_cfg)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A fresh PostgreSQL database on 127.0.0.1 for this test session (dropped afterwards)."""
    import uuid

    import psycopg

    name = f"qiuxue_test_{uuid.uuid4().hex[:8]}"
    admin = "host=127.0.0.1 port=5432 dbname=test user=postgres"
    try:
        conn = psycopg.connect(admin, autocommit=True)
    except psycopg.OperationalError:
        conn = psycopg.connect(admin.replace("user=postgres", "user=root"), autocommit=True)
    user = conn.info.user
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://{user}@127.0.0.1:5432/{name}"
    with psycopg.connect(admin.replace("user=postgres", f"user={user}"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_kb_cfg(kb_cfg: Config, pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The shipped KB with everything SQL (index versions, conversations) in PostgreSQL."""
    from ingest.refresh import refresh

    cfg = make_config(tmp_path_factory.mktemp("pg"), QIUXUE__DATA_DIR=str(kb_cfg.data_path),
                      QIUXUE__DATABASE__URL=pg_url)
    refresh(cfg, by="pytest")
    return cfg


@pytest.fixture(params=["sqlite", "postgresql"])
def db_cfg(request: pytest.FixtureRequest) -> Config:
    """The indexed shipped KB, with state in SQLite (the default) or in PostgreSQL.

    Both are shared by the session's tests: use `unique_user()` for conversation ids.
    """
    return request.getfixturevalue("kb_cfg" if request.param == "sqlite" else "pg_kb_cfg")


def unique_user(prefix: str = "w") -> str:
    import uuid

    return f"{prefix}-{uuid.uuid4().hex[:10]}"


ADMIN = 1001  # the Telegram admin of tg_cfg
FAST = {"QIUXUE__TELEGRAM__POLL_TIMEOUT_SECONDS": "1", "QIUXUE__DELIVERY__POLL_SECONDS": "0.05"}


@pytest.fixture
def tg_cfg(kb_cfg: Config, fake, tmp_path: Path) -> Config:  # type: ignore[no-untyped-def]
    """The indexed shipped KB with Telegram pointed at the fake Bot API, polling and delivering quickly."""
    return make_config(tmp_path, QIUXUE__DATA_DIR=str(kb_cfg.data_path), **FAST,
                       QIUXUE__TELEGRAM__BASE_URL=f"{fake.base_url}/bot", QIUXUE__TELEGRAM__ADMINS=f"[{ADMIN}]")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, no_network: list[object]):  # type: ignore[no-untyped-def]
    """The fake Telegram Bot API on 127.0.0.1; the test fails if anything else was contacted."""
    from tests.fakes.telegram_server import FakeBotApi

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    with FakeBotApi() as server:
        yield server
    assert no_network == []


@pytest.fixture
def wx(monkeypatch: pytest.MonkeyPatch, no_network: list[object]):  # type: ignore[no-untyped-def]
    """The fake WeChat in safe (AES) mode on 127.0.0.1; the test fails if anything else was contacted."""
    from tests.fakes.wechat_server import FakeWechat

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with FakeWechat(aes=True) as server:
        yield server
    assert no_network == []
