"""Server-side console sessions: the cookie holds a random token, the database only its SHA-256.

A login makes a row (account, expiry, address). Every request looks the token's hash up, so any
`qiuxue serve` process sharing the database accepts the cookie (no per-process key), and deleting the
row revokes it at once, for a copied cookie too: at logout, and for all of an account's sessions when
it is disabled or gets a new password (`bot.accounts`). Expired rows are deleted when a login is made.

A visitor who has not logged in also gets a random token (no row): it only carries the login form's
CSRF token, which is derived from it (`csrf_of`), so a page from another site cannot know it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import DateTime, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from common.clock import aware, utcnow
from common.db import Base

TOKEN_BYTES = 32


class ConsoleSession(Base):
    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's token
    account: Mapped[str] = mapped_column(String(64), index=True)           # the account's name
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    address: Mapped[str] = mapped_column(String(64), default="")           # where the login came from


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def plausible(token: str) -> bool:
    """A token this module could have made (anything else is replaced, never looked up)."""
    return 40 <= len(token) <= 64 and all(c.isalnum() or c in "-_" for c in token)


def token_hash(token: str) -> str:
    return hashlib.sha256(f"session:{token}".encode()).hexdigest()


def csrf_of(token: str) -> str:
    """The session's CSRF token: derived from the cookie's token, different from what the database holds."""
    return hashlib.sha256(f"csrf:{token}".encode()).hexdigest()


def revoke_account(s: Session, account: str) -> None:
    """Delete every session of the account (inside the caller's transaction)."""
    s.execute(delete(ConsoleSession).where(ConsoleSession.account == account))


class SessionStore:
    def __init__(self, sessions: sessionmaker, lifetime: timedelta) -> None:
        self.sessions, self.lifetime = sessions, lifetime

    def create(self, account: str, address: str = "") -> str:
        """A new session for the account; returns the token for the cookie (only its hash is stored)."""
        token, now = new_token(), utcnow()
        with self.sessions.begin() as s:
            s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
            s.add(ConsoleSession(token_hash=token_hash(token), account=account[:64], created_at=now,
                                 expires_at=now + self.lifetime, address=address[:64]))
        return token

    def account_of(self, token: str) -> str | None:
        """The account name of a live session with this token, else None."""
        if not plausible(token):
            return None
        with self.sessions() as s:
            row = s.get(ConsoleSession, token_hash(token))
            return row.account if row is not None and aware(row.expires_at) > utcnow() else None

    def revoke(self, token: str) -> None:
        if plausible(token):
            with self.sessions.begin() as s:
                s.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash(token)))

    def count(self, account: str) -> int:
        with self.sessions() as s:
            return len(s.scalars(select(ConsoleSession.token_hash).where(ConsoleSession.account == account)).all())
