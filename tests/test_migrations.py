"""Schema migrations: a database made before migrations existed upgrades in place, keeping its rows, and
the migrated schema is exactly what the table classes declare — on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

import bot.accounts  # noqa: F401  (each import registers its tables on Base)
import bot.channels.wechat_token  # noqa: F401
import bot.core.inbox  # noqa: F401
import bot.core.outbox  # noqa: F401
import bot.core.store  # noqa: F401
import bot.eval_reports  # noqa: F401
import bot.helpdesk.store  # noqa: F401
import bot.staff_sessions  # noqa: F401
import ingest.versions  # noqa: F401
from common.db import Base, make_engine
from common.migrate import HEAD, current, head, upgrade
from tests.conftest import PROJECT

LEGACY = PROJECT / "tests" / "data" / "legacy"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'legacy.db'}"
        return
    pg = request.getfixturevalue("pg_url")
    name = f"qiuxue_mig_{uuid.uuid4().hex[:8]}"
    admin = pg.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _legacy(url: str) -> None:
    """The schema and a row exactly as the code before migrations made them (create_all, no alembic_version)."""
    engine = create_engine(url)
    ddl = (LEGACY / f"schema-before-alembic.{engine.dialect.name}.sql").read_text(encoding="utf-8")
    with engine.begin() as conn:
        for statement in ddl.split(";"):
            body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            if body:
                conn.execute(text(body))
        conn.execute(text("INSERT INTO conversations (channel, user_id, display_name, lang, facts, flow_state, "
                          "guide_progress, dislikes_in_a_row, created_at, updated_at, version) VALUES "
                          "('telegram', '42', '老王', 'zh', '{}', '{}', '{}', 0, '2026-11-01 08:00:00', "
                          "'2026-11-01 08:00:00', 1)"))
    engine.dispose()


def test_a_database_from_before_migrations_upgrades_in_place(empty_url: str) -> None:
    _legacy(empty_url)
    engine = make_engine(empty_url)
    assert current(engine) is None and "inbox" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert current(engine) == head()
    with engine.connect() as conn:
        row = conn.execute(text("SELECT user_id, display_name, choices FROM conversations")).one()
        assert row[0] == "42" and row[1] == "老王"
        assert row[2] in ("[]", [])  # the new column got its default on the old row
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], diff
    upgrade(engine)  # a second start is a no-op
    engine.dispose()


def test_a_new_database_is_migrated_to_exactly_the_declared_schema(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_the_head_constant_is_the_scripts_head() -> None:
    assert head() == HEAD  # open_database skips alembic when a database is at HEAD
