"""Database engine and sessions (SQLAlchemy): SQLite under data_dir by default, any URL at scale.

Tables are declared on the shared `Base` by the modules that own them; the schema itself is made
and upgraded by the Alembic migrations in `common/migrations` (`open_database` runs them), so
opening a database never needs to import the table modules.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from common.settings import Settings


class Base(DeclarativeBase):
    """Declarative base shared by every table of the project."""


def database_url(cfg: Settings) -> str:
    url = cfg.database.url.strip()
    return url or f"sqlite:///{cfg.data_path / 'qiuxue.db'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across app crashes; one fsync per checkpoint
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


POOL_SIZE = 20  # connections a process keeps open: ≥ server.threads, which run database calls at once


def make_engine(url: str, pool_size: int = POOL_SIZE) -> Engine:
    """An engine whose pool holds `pool_size` connections open (more are opened for a burst and closed after):
    a pool smaller than the threads using it opens and closes a connection per transaction under load."""
    engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=10)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_database(cfg: Settings) -> sessionmaker:
    """Sessions on the configured database, its schema migrated to the newest; one engine per URL and process."""
    return _sessions_for(database_url(cfg), cfg.database.pool_size)


@cache
def _sessions_for(url: str, pool_size: int = POOL_SIZE) -> sessionmaker:
    from common.migrate import upgrade  # alembic is only imported by a process that opens a database

    engine = make_engine(url, pool_size)
    upgrade(engine)
    return sessionmaker(engine, expire_on_commit=False)
