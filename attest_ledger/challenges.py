"""Challenges: single-use, short-lived nonces that bind a document to a moment.

A worker asks for a challenge, puts its nonce in the attestation document, and submits. The
nonce is consumed in the same transaction that appends the verdict, with a conditional
update (:mod:`attest_ledger.intake`, one statement per append batch), so of two submissions
carrying the same nonce exactly one can use it.
"""

from __future__ import annotations

import enum
import secrets
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from attest_ledger.models import Challenge

__all__ = [
    "NONCE_BYTES",
    "ChallengeRow",
    "ChallengeState",
    "classify",
    "issue",
    "state_of",
]

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


class ChallengeRow(NamedTuple):
    client_id: int
    expires_at: datetime
    used_at: datetime | None


def state_of(
    session: Session, client_id: int, nonce: bytes | None, now: datetime
) -> ChallengeState:
    if nonce is None:
        return ChallengeState.UNKNOWN
    found = session.execute(
        select(Challenge.client_id, Challenge.expires_at, Challenge.used_at).where(
            Challenge.nonce == nonce
        )
    ).first()
    return classify(client_id, ChallengeRow(*found) if found is not None else None, now)


def classify(client_id: int, row: ChallengeRow | None, now: datetime) -> ChallengeState:
    """The state of a challenge row (None: no such nonce) for ``client_id`` at ``now``."""
    if row is None or row.client_id != client_id:
        return ChallengeState.UNKNOWN
    if row.used_at is not None:
        return ChallengeState.USED
    if row.expires_at <= now:
        return ChallengeState.EXPIRED
    return ChallengeState.OPEN
