"""Database engine and session factory (SQLAlchemy): SQLite under data_dir by default, any URL at scale.

Tables are declared in the modules that own them on the shared `Base`; `open_database`
creates what is missing.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from bot.config import Config


class Base(DeclarativeBase):
    """Declarative base shared by every table of the project."""


def database_url(cfg: Config) -> str:
    url = (cfg.database.url or "").strip()
    return url or f"sqlite:///{cfg.data_path / 'qiuxue.db'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across app crashes; one fsync per checkpoint
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_database(cfg: Config) -> sessionmaker:
    """Sessions on the configured database, every known table created; one engine per URL and process."""
    return _sessions_for(database_url(cfg))


@cache
def _sessions_for(url: str) -> sessionmaker:
    import bot.core.store  # noqa: F401  (each import registers its tables on Base)
    import bot.helpdesk.store  # noqa: F401
    import ingest.versions  # noqa: F401

    engine = make_engine(url)
    Base.metadata.create_all(engine)
    return sessionmaker(engine, expire_on_commit=False)
