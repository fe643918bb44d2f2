"""Schema migrations (Alembic), run by `open_database`: a database made by any earlier version upgrades in place.

A database made before migrations existed (tables but no `alembic_version`) is stamped with the first
revision, which is exactly the schema `create_all` made then, and upgraded from there. Concurrent
processes are serialised (PostgreSQL advisory lock; SQLite's write lock).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FIRST = "0001"
HEAD = "0007_shared"  # the newest revision; tests/test_migrations.py checks it against the scripts
_LOCK_KEY = 0x71697578  # "qiux"


def alembic_config():  # type: ignore[no-untyped-def]
    from alembic.config import Config as AlembicConfig  # alembic loads only when a schema must change

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The newest revision, as the migration scripts say."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


def current(engine: Engine) -> str | None:
    """The database's revision, read with one query (None: no migrations ran yet)."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`; a no-op when it is there already."""
    if revision == "head" and current(engine) == HEAD:
        return
    from alembic import command

    config = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        config.attributes["connection"] = conn
        tables = set(inspect(conn).get_table_names())
        if "alembic_version" not in tables and "conversations" in tables:
            command.stamp(config, FIRST)  # made by create_all before migrations existed
        command.upgrade(config, revision)
