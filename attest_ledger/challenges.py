"""Challenges: single-use, short-lived nonces that bind a document to a moment.

A worker asks for a challenge, puts its nonce in the attestation document, and submits. The
nonce is consumed in the same transaction that appends the verdict, with a conditional
update, so of two submissions carrying the same nonce exactly one can use it.
"""

from __future__ import annotations

import enum
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from attest_ledger.models import Challenge

__all__ = ["NONCE_BYTES", "ChallengeState", "consume", "issue", "state_of"]

NONCE_BYTES = 32


class ChallengeState(enum.StrEnum):
    OPEN = "open"
    UNKNOWN = "unknown"  # never issued, or issued to another client
    EXPIRED = "expired"
    USED = "used"


def issue(
    session: Session, client_id: int, count: int, ttl: timedelta, now: datetime
) -> list[Challenge]:
    challenges = [
        Challenge(nonce=secrets.token_bytes(NONCE_BYTES), client_id=client_id, expires_at=now + ttl)
        for _ in range(count)
    ]
    session.add_all(challenges)
    session.flush()
    return challenges


def state_of(
    session: Session, client_id: int, nonce: bytes | None, now: datetime
) -> ChallengeState:
    if nonce is None:
        return ChallengeState.UNKNOWN
    row = session.execute(
        select(Challenge.client_id, Challenge.expires_at, Challenge.used_at).where(
            Challenge.nonce == nonce
        )
    ).first()
    if row is None or row.client_id != client_id:
        return ChallengeState.UNKNOWN
    if row.used_at is not None:
        return ChallengeState.USED
    if row.expires_at <= now:
        return ChallengeState.EXPIRED
    return ChallengeState.OPEN


def consume(session: Session, client_id: int, nonce: bytes, now: datetime) -> bool:
    """Mark the challenge used; False if it was not open any more (a concurrent submission)."""
    used = session.execute(
        update(Challenge)
        .where(
            Challenge.nonce == nonce,
            Challenge.client_id == client_id,
            Challenge.used_at.is_(None),
            Challenge.expires_at > now,
        )
        .values(used_at=now)
        .returning(Challenge.nonce)
    ).first()
    return used is not None
