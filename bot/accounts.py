"""Staff accounts of the web console: agents and admins, argon2-hashed passwords, lock-out, the audit log.

`qiuxue users add NAME --role agent|admin [--password-stdin]` creates or updates an account (the password
is prompted twice unless it comes on stdin); `qiuxue users disable NAME` disables one. A new password or a
disabled account ends the account's console sessions (`bot.staff_sessions`). A console user acts on tickets as the staff identity
`console:NAME` (`staff_id`); `bot.helpdesk.service` accepts such an identity while the account is active,
so the core never needs to know who logged in how. Every console action is an `AuditEntry` with who did
it. Passwords are never stored or logged; wrong ones in a row (`console.max_failures`) lock the account
for `console.lockout_minutes`.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from bot.core.edge import clean_text
from bot.staff_sessions import revoke_account
from common.clock import aware, utcnow
from common.db import Base, open_database
from common.settings import Settings

STAFF_PREFIX = "console:"  # a console user's staff identity on tickets: console:NAME
MIN_PASSWORD = 10
_HASHER = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the name is unknown, so a wrong name costs as long as a wrong password;
    made on first use, not at import (it costs a hash: start-up time)."""
    return _HASHER.hash("not-a-password-of-anyone")


class Role(StrEnum):
    AGENT = "agent"  # the helpdesk inbox
    ADMIN = "admin"  # the inbox, the knowledge-base admin and insight pages


class StaffUser(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default=Role.AGENT)
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # wrong passwords in a row
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)  # the account name ("-" before a login)
    action: Mapped[str] = mapped_column(String(48))              # login, login_failed, claim, reply, …
    target: Mapped[str] = mapped_column(String(128), default="")  # e.g. ticket:12
    detail: Mapped[str] = mapped_column(Text, default="")         # masked at the edge like everything else
    address: Mapped[str] = mapped_column(String(64), default="")  # the client's IP address
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


@dataclass(frozen=True)
class Account:
    """Who is logged in (never the hash)."""

    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def staff_id(self) -> str:
        return staff_id(self.name)


class LoginRefused(Exception):
    """Wrong name or password, or a locked account; the message is safe to show."""


class Locked(LoginRefused):
    """Too many wrong passwords in a row."""


def staff_id(name: str) -> str:
    return f"{STAFF_PREFIX}{name}"


def valid_name(name: str) -> bool:
    return 0 < len(name) <= 64 and all(c.isalnum() or c in "._-" for c in name)


class Accounts:
    def __init__(self, cfg: Settings, sessions: sessionmaker | None = None) -> None:
        self.sessions = sessions or open_database(cfg)
        self.max_failures = cfg.console.max_failures
        self.lockout = timedelta(minutes=cfg.console.lockout_minutes)

    def add(self, name: str, role: str, password: str) -> None:
        """Create the account, or set a new role and password on it (and unlock it)."""
        if not valid_name(name):
            raise ValueError("a name is 1–64 letters, digits, '.', '_' or '-'")
        if role not in {r.value for r in Role}:
            raise ValueError(f"role must be one of {', '.join(r.value for r in Role)}")
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
        with self.sessions.begin() as s:
            user = s.scalars(select(StaffUser).where(StaffUser.name == name)).first()
            if user is None:
                user = StaffUser(name=name)
                s.add(user)
            else:  # a new password (or role): whoever is logged in with the old one is logged out
                revoke_account(s, name)
            user.role, user.password_hash, user.active = role, _HASHER.hash(password), True
            user.failures, user.locked_until = 0, None
            self._audit(s, "-", "user_saved", f"user:{name}", f"role {role}", "cli")

    def disable(self, name: str, by: str = "-") -> bool:
        """Disable the account and end its sessions; False if there is no such account."""
        with self.sessions.begin() as s:
            user = s.scalars(select(StaffUser).where(StaffUser.name == name)).first()
            if user is None:
                return False
            user.active = False
            revoke_account(s, name)
            self._audit(s, by, "user_disabled", f"user:{name}", "", "cli" if by == "-" else "")
            return True

    def login(self, name: str, password: str, address: str = "") -> Account:
        """The account if the password is right; otherwise `LoginRefused` (or `Locked`), recorded either way."""
        with self.sessions.begin() as s:  # the failure count and the audit line commit before the refusal
            outcome = self._attempt(s, name, password, address)
        if isinstance(outcome, LoginRefused):
            raise outcome
        return outcome

    def _attempt(self, s, name: str, password: str, address: str) -> Account | LoginRefused:  # type: ignore[no-untyped-def]
        now = utcnow()
        user = s.scalars(select(StaffUser).where(StaffUser.name == name[:64])).first()
        if user is None or not user.active:
            _check(_dummy_hash(), password)
            self._audit(s, "-", "login_failed", f"user:{clean_text(name)[:100]}", "unknown name", address)
            return LoginRefused("wrong name or password")
        if user.locked_until is not None and aware(user.locked_until) > now:
            self._audit(s, user.name, "login_locked", f"user:{user.name}", "", address)
            return Locked("locked")
        if not _check(user.password_hash, password):
            user.failures += 1
            locked = user.failures >= self.max_failures
            if locked:
                user.locked_until, user.failures = now + self.lockout, 0
            self._audit(s, user.name, "login_failed", f"user:{user.name}", "locked" if locked else "", address)
            return Locked("locked") if locked else LoginRefused("wrong name or password")
        user.failures, user.locked_until, user.last_login = 0, None, now
        self._audit(s, user.name, "login", f"user:{user.name}", "", address)
        return Account(user.name, user.role)

    def current(self, name: str) -> Account | None:
        """The account as it is now (None if it was removed or disabled)."""
        with self.sessions() as s:
            user = s.scalars(select(StaffUser).where(StaffUser.name == name)).first()
            return Account(user.name, user.role) if user is not None and user.active else None

    def audit(self, actor: str, action: str, target: str = "", detail: str = "", address: str = "") -> None:
        with self.sessions.begin() as s:
            self._audit(s, actor, action, target, detail, address)

    def recent_audit(self, limit: int = 200) -> list[AuditEntry]:
        with self.sessions() as s:
            return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))

    @staticmethod
    def _audit(s, actor: str, action: str, target: str, detail: str, address: str) -> None:  # type: ignore[no-untyped-def]
        s.add(AuditEntry(actor=actor[:64], action=action[:48], target=clean_text(target)[:128],
                         detail=clean_text(detail)[:2000], address=address[:64]))


def is_console_agent(sessions: sessionmaker, identity: str) -> bool:
    """Whether a staff identity `console:NAME` belongs to an active account (agents and admins alike)."""
    if not identity.startswith(STAFF_PREFIX):
        return False
    with sessions() as s:
        user = s.scalars(select(StaffUser).where(StaffUser.name == identity[len(STAFF_PREFIX):])).first()
        return user is not None and user.active


def has_console_staff(sessions: sessionmaker) -> bool:
    with sessions() as s:
        return s.scalars(select(StaffUser.id).where(StaffUser.active.is_(True)).limit(1)).first() is not None


def _check(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def cmd_users(cfg: Settings, args: argparse.Namespace) -> int:
    """`qiuxue users add NAME --role agent|admin [--password-stdin]`, `qiuxue users disable NAME`."""
    if getattr(args, "users_command", "add") == "disable":
        if not Accounts(cfg).disable(args.name):
            print(f"no account {args.name}", file=sys.stderr)
            return 2
        print(f"disabled {args.name}; its console sessions are ended")
        return 0
    try:
        Accounts(cfg).add(args.name, args.role, _read_password(args.password_stdin))
    except ValueError as exc:
        print(f"not saved: {exc}", file=sys.stderr)
        return 2
    print(f"saved {args.role} {args.name}; log in at /console/ of `qiuxue serve`")
    return 0
