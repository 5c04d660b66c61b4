"""Auditor portal accounts: users, their sessions, and the limits on signing in.

Framework-free (the portal's views and the ``attest-ledger users`` command call it).

* Passwords are hashed with Argon2id (argon2-cffi, RFC 9106's second recommended
  parameters: 64 MiB, 3 passes, 4 lanes), memory-hard; a hash made with weaker parameters is
  upgraded at the next successful sign-in.
* A session is a random 256-bit token held by the browser; the database keeps its SHA-256,
  the user, the session's CSRF token and an expiry. Signing out deletes the row, and
  disabling a user deletes all of theirs.
* Sign-in attempts are limited per user name and per address, counted in the database so
  that the limit holds across processes: after ``MAX_FAILURES_PER_NAME`` failures in
  ``FAILURE_WINDOW`` the name is refused until the window passes, whatever the password.
  Verifying a password for an unknown name costs as much as for a known one.
* Adding, disabling and enabling users are ledger entries (``"kind": "access"``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from attest_ledger.models import LoginFailure, PortalSession, PortalUser
from ledger.append import append
from ledger.entry import NewEntry

__all__ = [
    "FAILURE_WINDOW",
    "MAX_FAILURES_PER_ADDRESS",
    "MAX_FAILURES_PER_NAME",
    "ROLES",
    "Account",
    "SignIn",
    "SignedIn",
    "UserError",
    "add_user",
    "csrf_matches",
    "end_session",
    "end_sessions",
    "list_accounts",
    "list_users",
    "resume_session",
    "set_disabled",
    "set_password",
    "sign_in",
]

ROLES = ("auditor", "admin")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_ADDRESS = 20
FAILURE_WINDOW = timedelta(minutes=15)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_HASHER = PasswordHasher()  # Argon2id, 64 MiB, t=3, p=4
# Verified against when the name is unknown, so both paths take the same time.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class UserError(Exception):
    """A name or password that cannot be used, or an unknown user."""


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def _record(session: Session, action: str, name: str, role: str, by: str | None = None) -> None:
    record = {"kind": "access", "action": action, "user": name, "role": role}
    if by is not None:  # done in the portal by this administrator (else: the command line)
        record["by"] = by
    append(session, [NewEntry.from_record(record)])


def add_user(session: Session, name: str, role: str, password: str) -> None:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if not _NAME.fullmatch(name):
        raise UserError("a user name is 1-64 letters, digits, '.', '_', '@' or '-'")
    _check_password(password)
    if session.execute(select(PortalUser.id).where(PortalUser.name == name)).first():
        raise UserError(f"a user named {name!r} already exists")
    session.add(PortalUser(name=name, role=role, password_hash=_HASHER.hash(password)))
    session.flush()
    _record(session, "user_added", name, role)


def set_password(session: Session, name: str, password: str) -> None:
    _check_password(password)
    user = session.execute(select(PortalUser).where(PortalUser.name == name)).scalar_one_or_none()
    if user is None:
        raise UserError(f"no user named {name!r}")
    user.password_hash = _HASHER.hash(password)
    session.execute(delete(PortalSession).where(PortalSession.user_id == user.id))
    session.flush()


def set_disabled(session: Session, name: str, *, disabled: bool, by: str | None = None) -> None:
    user = session.execute(select(PortalUser).where(PortalUser.name == name)).scalar_one_or_none()
    if user is None:
        raise UserError(f"no user named {name!r}")
    if disabled == (user.disabled_at is not None):
        raise UserError(f"{name!r} is already {'disabled' if disabled else 'enabled'}")
    user.disabled_at = func.now() if disabled else None
    if disabled:
        session.execute(delete(PortalSession).where(PortalSession.user_id == user.id))
    session.flush()
    _record(session, "user_disabled" if disabled else "user_enabled", name, user.role, by)


def end_sessions(session: Session, name: str, *, by: str | None = None) -> int:
    """Sign a user out everywhere; how many sessions ended."""
    user = session.execute(select(PortalUser).where(PortalUser.name == name)).scalar_one_or_none()
    if user is None:
        raise UserError(f"no user named {name!r}")
    ended = session.execute(
        delete(PortalSession)
        .where(PortalSession.user_id == user.id)
        .returning(PortalSession.token_sha256)
    ).all()
    _record(session, "sessions_ended", name, user.role, by)
    return len(ended)


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    created_at: datetime
    disabled_at: datetime | None
    live_sessions: int


def list_accounts(session: Session, *, now: datetime) -> list[Account]:
    """Every account with its number of live sessions, for the administrators' page."""
    live = (
        select(PortalSession.user_id, func.count().label("n"))
        .where(PortalSession.expires_at > now)
        .group_by(PortalSession.user_id)
        .subquery()
    )
    rows = session.execute(
        select(
            PortalUser.name,
            PortalUser.role,
            PortalUser.created_at,
            PortalUser.disabled_at,
            func.coalesce(live.c.n, 0),
        )
        .outerjoin(live, live.c.user_id == PortalUser.id)
        .order_by(PortalUser.name)
    ).all()
    return [Account(*row) for row in rows]


def list_users(session: Session) -> list[PortalUser]:
    return list(session.execute(select(PortalUser).order_by(PortalUser.name)).scalars())


@dataclass(frozen=True)
class SignedIn:
    """A live session, as a request sees it."""

    user_id: int
    name: str
    role: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in: a session token for the cookie, or why not."""

    token: str | None
    session: SignedIn | None
    refused: str | None  # "invalid" (name or password) or "limited" (too many failures)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _recent_failures(
    session: Session, column: InstrumentedAttribute[str], value: str, now: datetime
) -> int:
    return int(
        session.execute(
            select(func.count())
            .select_from(LoginFailure)
            .where(column == value, LoginFailure.at > now - FAILURE_WINDOW)
        ).scalar_one()
    )


def sign_in(
    session: Session,
    name: str,
    password: str,
    *,
    address: str,
    now: datetime,
    lifetime: timedelta,
) -> SignIn:
    """Check the password and open a session; the caller commits either way (a failure is
    recorded). A limited name or address is refused before its password is looked at."""
    name = name[:64]
    if (
        _recent_failures(session, LoginFailure.name, name, now) >= MAX_FAILURES_PER_NAME
        or _recent_failures(session, LoginFailure.address, address, now) >= MAX_FAILURES_PER_ADDRESS
    ):
        return SignIn(None, None, "limited")
    user = session.execute(select(PortalUser).where(PortalUser.name == name)).scalar_one_or_none()
    stored = user.password_hash if user is not None else _DUMMY_HASH
    valid = _verify(stored, password[:MAX_PASSWORD])
    if user is None or not valid or user.disabled_at is not None:
        session.add(LoginFailure(name=name, address=address, at=now))
        session.flush()
        return SignIn(None, None, "invalid")
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    session.execute(delete(LoginFailure).where(LoginFailure.name == name, LoginFailure.at <= now))
    session.execute(delete(PortalSession).where(PortalSession.expires_at <= now))
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + lifetime
    session.add(
        PortalSession(
            token_sha256=_digest(token), user_id=user.id, csrf_token=csrf, expires_at=expires
        )
    )
    session.flush()
    return SignIn(token, SignedIn(user.id, user.name, user.role, csrf, expires), None)


def _verify(stored: str, password: str) -> bool:
    try:
        return bool(_HASHER.verify(stored, password))
    except (VerificationError, InvalidHashError):
        return False


def resume_session(session: Session, token: str, *, now: datetime) -> SignedIn | None:
    """The live session behind a cookie's token, or None (unknown, expired, user disabled)."""
    if not token or len(token) > 100:
        return None
    row = session.execute(
        select(
            PortalUser.id,
            PortalUser.name,
            PortalUser.role,
            PortalSession.csrf_token,
            PortalSession.expires_at,
        )
        .join(PortalUser, PortalUser.id == PortalSession.user_id)
        .where(
            PortalSession.token_sha256 == _digest(token),
            PortalSession.expires_at > now,
            PortalUser.disabled_at.is_(None),
        )
    ).first()
    return None if row is None else SignedIn(*row)


def end_session(session: Session, token: str) -> None:
    session.execute(delete(PortalSession).where(PortalSession.token_sha256 == _digest(token)))


def csrf_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
