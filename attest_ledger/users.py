"""Auditor portal accounts: users, their sessions, and the limits on signing in.

Framework-free (the portal's views and the ``attest-ledger users`` command call it).

* Passwords are hashed with Argon2id (argon2-cffi, RFC 9106's second recommended
  parameters: 64 MiB, 3 passes, 4 lanes), memory-hard; a hash made with weaker parameters is
  upgraded at the next successful sign-in.
* A session is a random 256-bit token held by the browser; the database keeps its SHA-256,
  the user, the session's CSRF token and an expiry. Signing out deletes the row, and
  disabling a user deletes all of theirs.
* Sign-in attempts are limited without letting anybody lock anybody else out (OWASP's
  "device cookies"). A browser that signs in successfully receives a device cookie (the
  database keeps its SHA-256); an attempt presenting a device cookie of that user is limited
  on its own (``MAX_FAILURES_PER_DEVICE`` failures in ``FAILURE_WINDOW``), so failures from
  elsewhere never lock a known device out. Attempts without one are limited per name and
  address (``MAX_FAILURES_PER_PAIR``), per address (``MAX_FAILURES_PER_ADDRESS``) and, far
  higher, per name (``MAX_FAILURES_PER_NAME``: only many addresses together can shut new
  devices out of one account, and never its known ones).
* The limits are exact across processes: the counts are read and the attempt is recorded, as
  a failure until it succeeds, in one transaction under advisory locks on the name and the
  address, before the password is hashed; concurrent guesses cannot slip past together.
* At most ``MAX_CONCURRENT_HASHES`` Argon2 verifications run at once in a process (64 MiB
  each); an attempt that cannot start one within ``HASH_WAIT`` is refused as ``busy`` and is
  not counted. Verifying a password for an unknown name costs as much as for a known one.
* Adding, disabling and enabling users are ledger entries (``"kind": "access"``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from attest_ledger.models import LoginFailure, PortalDevice, PortalSession, PortalUser
from ledger.append import append
from ledger.db import session_scope
from ledger.entry import NewEntry

__all__ = [
    "DEVICE_LIFETIME",
    "FAILURE_WINDOW",
    "MAX_CONCURRENT_HASHES",
    "MAX_FAILURES_PER_ADDRESS",
    "MAX_FAILURES_PER_DEVICE",
    "MAX_FAILURES_PER_NAME",
    "MAX_FAILURES_PER_PAIR",
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
MAX_FAILURES_PER_DEVICE = 5  # a known device, on its own
MAX_FAILURES_PER_PAIR = 5  # an unknown client: this name from this address
MAX_FAILURES_PER_ADDRESS = 20  # an unknown client: any name from this address
MAX_FAILURES_PER_NAME = 50  # unknown clients: this name from anywhere
FAILURE_WINDOW = timedelta(minutes=15)
DEVICE_LIFETIME = timedelta(days=365)
MAX_CONCURRENT_HASHES = 2
HASH_WAIT = 10.0
_HASHING = threading.BoundedSemaphore(MAX_CONCURRENT_HASHES)
#: pg_advisory_xact_lock classes of the sign-in counters ("logn", "loga")
_NAME_LOCK, _ADDRESS_LOCK = 0x6C6F676E, 0x6C6F6761
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
    #: "invalid" (name or password), "limited" (too many failures), "busy" (too many
    #: passwords being checked at once; not counted)
    refused: str | None
    #: a new device cookie for this browser (None: it has a valid one, or the sign-in failed)
    device_token: str | None = None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


_COUNTS = text(
    """
    SELECT
        count(*) FILTER (WHERE device_sha256 = :device),
        count(*) FILTER (WHERE device_sha256 IS NULL AND name = :name AND address = :address),
        count(*) FILTER (WHERE device_sha256 IS NULL AND address = :address),
        count(*) FILTER (WHERE device_sha256 IS NULL AND name = :name)
    FROM portal_login_failures
    WHERE at > :since AND (name = :name OR address = :address OR device_sha256 = :device)
    """
)


def _limited(
    session: Session, name: str, address: str, device: bytes | None, now: datetime
) -> bool:
    by_device, by_pair, by_address, by_name = session.execute(
        _COUNTS,
        {"name": name, "address": address, "device": device, "since": now - FAILURE_WINDOW},
    ).one()
    if device is not None:
        return bool(by_device >= MAX_FAILURES_PER_DEVICE)
    return bool(
        by_pair >= MAX_FAILURES_PER_PAIR
        or by_address >= MAX_FAILURES_PER_ADDRESS
        or by_name >= MAX_FAILURES_PER_NAME
    )


def _known_device(session: Session, token: str | None, name: str, now: datetime) -> bytes | None:
    """The SHA-256 of ``token`` if it is a live device cookie of the user ``name``."""
    if not token or len(token) > 100:
        return None
    digest = _digest(token)
    found = session.execute(
        select(PortalDevice.token_sha256)
        .join(PortalUser, PortalUser.id == PortalDevice.user_id)
        .where(
            PortalDevice.token_sha256 == digest,
            PortalUser.name == name,
            PortalDevice.expires_at > now,
        )
    ).scalar_one_or_none()
    return digest if found is not None else None


def sign_in(
    sessions: sessionmaker[Session],
    name: str,
    password: str,
    *,
    address: str,
    now: datetime,
    lifetime: timedelta,
    device_token: str | None = None,
) -> SignIn:
    """Check the password and open a session, in transactions of its own (see the module
    docstring for the limits). ``device_token``: the browser's device cookie, if any."""
    name = name[:64]
    with session_scope(sessions) as session:
        session.execute(
            text(
                "SELECT pg_advisory_xact_lock(CAST(:c AS int4), hashtext(:n)), "
                "pg_advisory_xact_lock(CAST(:a AS int4), hashtext(:v))"
            ),
            {"c": _NAME_LOCK, "n": name, "a": _ADDRESS_LOCK, "v": address},
        )
        device = _known_device(session, device_token, name, now)
        if _limited(session, name, address, device, now):
            return SignIn(None, None, "limited")
        attempt = LoginFailure(name=name, address=address, at=now, device_sha256=device)
        session.add(attempt)  # a failure until it succeeds: counted before the hash is checked
        session.flush()
        attempt_id = attempt.id
        user = session.execute(
            select(PortalUser.id, PortalUser.password_hash).where(PortalUser.name == name)
        ).one_or_none()
    stored = user.password_hash if user is not None else _DUMMY_HASH
    if not _HASHING.acquire(timeout=HASH_WAIT):
        with session_scope(sessions) as session:  # nothing was guessed: not a failure
            session.execute(delete(LoginFailure).where(LoginFailure.id == attempt_id))
        return SignIn(None, None, "busy")
    try:
        valid = _verify(stored, password[:MAX_PASSWORD])
    finally:
        _HASHING.release()
    if user is None or not valid:
        return SignIn(None, None, "invalid")
    with session_scope(sessions) as session:
        account = session.get(PortalUser, user.id)
        if account is None or account.disabled_at is not None or account.password_hash != stored:
            return SignIn(None, None, "invalid")  # disabled, or changed, meanwhile
        session.execute(delete(LoginFailure).where(LoginFailure.id == attempt_id))
        if device is not None:  # this device is known good again
            session.execute(delete(LoginFailure).where(LoginFailure.device_sha256 == device))
        if _HASHER.check_needs_rehash(account.password_hash):
            account.password_hash = _HASHER.hash(password)
        session.execute(delete(PortalSession).where(PortalSession.expires_at <= now))
        new_device = None
        if device is None:
            new_device = secrets.token_urlsafe(32)
            session.execute(delete(PortalDevice).where(PortalDevice.expires_at <= now))
            session.add(
                PortalDevice(
                    token_sha256=_digest(new_device),
                    user_id=account.id,
                    expires_at=now + DEVICE_LIFETIME,
                )
            )
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = now + lifetime
        session.add(
            PortalSession(
                token_sha256=_digest(token), user_id=account.id, csrf_token=csrf, expires_at=expires
            )
        )
        session.flush()
        signed_in = SignedIn(account.id, account.name, account.role, csrf, expires)
    return SignIn(token, signed_in, None, new_device)


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
