"""Challenges: single-use, short-lived nonces that bind a document to a moment.

A worker asks for a challenge, puts its nonce in the attestation document, and submits. The
nonce is consumed in the same transaction that appends the verdict, with a conditional
update (:mod:`attest_ledger.intake`, one statement per append batch), so of two submissions
carrying the same nonce exactly one can use it.

Bounded: a worker may hold at most ``max_open`` open challenges (issued, neither used nor
expired); asking for more is refused with :class:`ChallengeLimit` until some are used or
expire. A challenge is deleted :data:`RETENTION` after it expired (:func:`sweep`, run by the
elected checkpoint publisher), so the table holds at most what the workers may have open plus
an hour of history. Until then a replayed or late nonce is named precisely
(``nonce_replayed``, ``nonce_expired``); afterwards it is ``nonce_unknown``, and the document
is by then far older than any policy's maximum age.
"""

from __future__ import annotations

import enum
import math
import secrets
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from attest_ledger.models import Challenge
from ledger.db import driver_connection

__all__ = [
    "NONCE_BYTES",
    "RETENTION",
    "SWEEP_BATCH",
    "ChallengeLimit",
    "ChallengeRow",
    "ChallengeState",
    "classify",
    "issue",
    "state_of",
    "stored",
    "sweep",
]

NONCE_BYTES = 32
#: How long a challenge is kept after it expired, to name replays precisely.
RETENTION = timedelta(hours=1)
#: pg_advisory_xact_lock class of "issuing challenges for one client" ("chal").
_ISSUE_LOCK = 0x6368616C
SWEEP_BATCH = 10_000


class ChallengeLimit(Exception):
    """The worker already holds as many open challenges as it may."""

    code = "too_many_challenges"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class ChallengeState(enum.StrEnum):
    OPEN = "open"
    UNKNOWN = "unknown"  # never issued, or issued to another client
    EXPIRED = "expired"
    USED = "used"


class Issued(NamedTuple):
    nonce: bytes
    expires_at: datetime


# Counted and written under a per-client transaction lock, so that concurrent requests of
# one worker cannot together pass the cap; sent as one pipelined exchange.
_LOCK_CLIENT = "SELECT pg_advisory_xact_lock(%s::int4, %s::int4)"
_ISSUE = """
    WITH open AS (
        SELECT count(*) AS n, min(expires_at) AS soonest FROM challenges
        WHERE client_id = %(client)s AND used_at IS NULL AND expires_at > %(now)s
    ), issued AS (
        INSERT INTO challenges (nonce, client_id, expires_at)
        SELECT n, %(client)s, %(expires)s FROM unnest(%(nonces)s::bytea[]) AS n
        WHERE (SELECT n FROM open) + %(count)s <= %(cap)s
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM issued), n, soonest FROM open
"""


def issue(
    session: Session,
    client_id: int,
    count: int,
    ttl: timedelta,
    now: datetime,
    *,
    max_open: int,
) -> list[Issued]:
    """Issue ``count`` fresh challenges to ``client_id``, valid until ``now + ttl``, and
    commit them. Raises :class:`ChallengeLimit` if the client would then hold more than
    ``max_open`` open ones (nothing is issued)."""
    nonces = [secrets.token_bytes(NONCE_BYTES) for _ in range(count)]
    expires = now + ttl
    raw = driver_connection(session)
    with raw.transaction(), raw.pipeline(), raw.cursor() as lock, raw.cursor() as cursor:
        lock.execute(_LOCK_CLIENT, (_ISSUE_LOCK, client_id & 0x7FFFFFFF))
        cursor.execute(
            _ISSUE,
            {
                "client": client_id,
                "now": now,
                "expires": expires,
                "nonces": nonces,
                "count": count,
                "cap": max_open,
            },
        )
        row: Any = cursor.fetchone()
    issued, held, soonest = row
    if issued != count:
        wait = (soonest - now).total_seconds() if soonest is not None else ttl.total_seconds()
        raise ChallengeLimit(
            f"this worker holds {held} open challenges, the most it may hold is {max_open}; "
            "use or let some expire first",
            retry_after=max(1, math.ceil(wait)),
        )
    return [Issued(nonce, expires) for nonce in nonces]


def sweep(session: Session, now: datetime, *, limit: int = SWEEP_BATCH) -> int:
    """Delete up to ``limit`` challenges that expired more than :data:`RETENTION` ago;
    return how many. The caller commits."""
    cutoff = now - RETENTION
    doomed = (
        select(Challenge.nonce).where(Challenge.expires_at < cutoff).limit(limit).scalar_subquery()
    )
    result = session.execute(delete(Challenge).where(Challenge.nonce.in_(doomed)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # a CursorResult has it


def stored(session: Session) -> int:
    """How many challenges the table holds (for the metrics)."""
    return int(session.execute(select(func.count()).select_from(Challenge)).scalar_one())


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
