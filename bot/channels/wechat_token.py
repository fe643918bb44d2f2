"""The WeChat access_token, fetched once and shared by every `qiuxue serve` process through the database.

Why the database and not Redis: every process already shares the database (PostgreSQL when there
are several; SQLite on one host) and it is transactional, so the token needs no extra service. One
row per AppID. A process that finds the token missing, or within `REFRESH_MARGIN` of expiry, locks
the row (an UPDATE: a row lock on PostgreSQL, the write lock on SQLite), reads it again — another
process may have refreshed it meanwhile — and only then asks WeChat for a new one: one process
refreshes, the others wait for it and reuse its token. After WeChat called a token invalid or
expired (40001, 42001), `refresh(stale)` fetches a new one only if the row still holds that token.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Integer, String, Text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from common.clock import aware, utcnow
from common.db import Base

REFRESH_MARGIN = timedelta(minutes=5)  # refreshed this long before WeChat's expiry (tokens live 2 hours)


class WechatToken(Base):
    __tablename__ = "wechat_tokens"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_token: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    refreshes: Mapped[int] = mapped_column(Integer, default=0)


def _usable(row: WechatToken | None) -> bool:
    return bool(row and row.access_token and row.expires_at and aware(row.expires_at) - utcnow() > REFRESH_MARGIN)


class SharedToken:
    """`get()` the current token; `refresh(stale)` after WeChat refused it. `fetch` asks WeChat: (token, seconds)."""

    def __init__(self, sessions: sessionmaker, app_id: str, fetch: Callable[[], tuple[str, int]]) -> None:
        self.sessions, self.app_id, self.fetch = sessions, app_id, fetch

    def get(self) -> str:
        with self.sessions() as s:
            row = s.get(WechatToken, self.app_id)
            if _usable(row):
                assert row is not None
                return row.access_token
        return self._renew(_usable)

    def refresh(self, stale: str) -> str:
        """A new token unless another process already replaced `stale`."""
        return self._renew(lambda row: _usable(row) and row is not None and row.access_token != stale)

    def _renew(self, still_good: Callable[[WechatToken | None], bool]) -> str:
        try:
            with self.sessions.begin() as s:
                s.add(WechatToken(app_id=self.app_id, access_token="", refreshes=0))
        except IntegrityError:
            pass  # the row exists
        with self.sessions.begin() as s:
            s.execute(update(WechatToken).where(WechatToken.app_id == self.app_id)
                      .values(refreshes=WechatToken.refreshes))  # takes the lock; the others wait here
            row = s.get(WechatToken, self.app_id, populate_existing=True)
            assert row is not None
            if still_good(row):
                return row.access_token
            token, seconds = self.fetch()
            now = utcnow()
            row.access_token, row.expires_at = token, now + timedelta(seconds=seconds)
            row.refreshed_at, row.refreshes = now, row.refreshes + 1
            return token
