"""API clients: workers (submit evidence) and readers (read the ledger), with bearer tokens.

A token is 32 random bytes, base64url, behind a prefix naming its role (``alw_`` for
workers, ``alr_`` for readers). It is shown once, when the client is added; only its SHA-256
is stored (the token is random, so a slow hash would add nothing). Revoking keeps the row.
Adding and revoking clients are recorded in the ledger, so auditors see who could submit when.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from attest_ledger.models import ApiClient
from ledger.append import append
from ledger.db import driver_connection
from ledger.entry import NewEntry

__all__ = [
    "ROLES",
    "ClientError",
    "Principal",
    "authenticate",
    "create_client",
    "list_clients",
    "revoke_client",
]

ROLES = ("worker", "reader")
_PREFIX = {"worker": "alw_", "reader": "alr_"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ClientError(Exception):
    """A client name that is invalid, taken or unknown."""


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_client(session: Session, name: str, role: str) -> str:
    """Add a client and return its bearer token (shown once; only its hash is kept)."""
    if role not in ROLES:
        raise ClientError(f"role must be one of {', '.join(ROLES)}")
    if not _NAME.fullmatch(name):
        raise ClientError("a client name is 1-64 letters, digits, '.', '_' or '-'")
    if session.execute(select(ApiClient.id).where(ApiClient.name == name)).first():
        raise ClientError(f"a client named {name!r} already exists")
    token = _PREFIX[role] + secrets.token_urlsafe(32)
    session.add(ApiClient(name=name, role=role, token_sha256=token_digest(token)))
    session.flush()
    append(
        session,
        [
            NewEntry.from_record(
                {"kind": "access", "action": "client_added", "client": name, "role": role}
            )
        ],
    )
    return token


def revoke_client(session: Session, name: str) -> None:
    revoked = session.execute(
        update(ApiClient)
        .where(ApiClient.name == name, ApiClient.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(ApiClient.role)
    ).first()
    if revoked is None:
        raise ClientError(f"no active client named {name!r}")
    append(
        session,
        [
            NewEntry.from_record(
                {"kind": "access", "action": "client_revoked", "client": name, "role": revoked.role}
            )
        ],
    )


@dataclass(frozen=True)
class Principal:
    """An authenticated client, as requests see it."""

    id: int
    name: str
    role: str


def authenticate(session: Session, token: str) -> Principal | None:
    """The active client holding ``token``, or None. (Every request calls this: one
    statement on the driver connection, no ORM.)"""
    if not token or len(token) > 200:
        return None
    with driver_connection(session).cursor() as cursor:
        cursor.execute(
            "SELECT id, name, role FROM api_clients WHERE token_sha256 = %s AND revoked_at IS NULL",
            (token_digest(token),),
        )
        row = cursor.fetchone()
    return None if row is None else Principal(*row)


def list_clients(session: Session) -> list[ApiClient]:
    return list(session.execute(select(ApiClient).order_by(ApiClient.name)).scalars())
