"""Counts of entries per hour, kept incrementally beside the ledger.

``ledger_hourly_counts`` holds, for every hour of appending (UTC) and every combination of
kind, evidence kind, verdict, worker and image, how many entries there are;
``ledger_stats_state.next_idx`` says how far that has been counted. :func:`refresh` counts
the entries appended since, in bounded steps; :func:`aggregate` answers "how many, by what,
per hour/day/month" from the counts, in a few milliseconds at any ledger size, after a
refresh.

Entries become visible in index order (the sequencer lock is held until commit), so "every
entry below ``next_idx``" is always a prefix of the ledger and nothing is counted twice or
missed. The counts are derived data: they prove nothing and can be rebuilt from the entries
(:func:`rebuild`); tests compare them with a direct count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["BUCKETS", "GROUPS", "Count", "aggregate", "counted", "rebuild", "refresh"]

BUCKETS = ("hour", "day", "month")
GROUPS = ("kind", "evidence_kind", "verdict", "worker", "image")

_REFRESH = text(
    """
    INSERT INTO ledger_hourly_counts (hour, kind, evidence_kind, verdict, worker, image, entries)
    SELECT date_trunc('hour', appended_at, 'UTC'), coalesce(kind, ''),
           coalesce(evidence_kind, ''), coalesce(verdict, ''), coalesce(worker, ''),
           coalesce(image, ''), count(*)
    FROM ledger_entries
    WHERE idx >= :start AND idx < :stop
    GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (hour, kind, evidence_kind, verdict, worker, image)
    DO UPDATE SET entries = ledger_hourly_counts.entries + EXCLUDED.entries
    """
)


def refresh(session: Session, *, step: int = 200_000, max_steps: int = 1) -> int:
    """Count what was appended since the last refresh (at most ``step * max_steps`` entries);
    return how many were counted. Runs in the caller's transaction; a concurrent refresh
    holding the state row makes this one return 0 at once instead of waiting."""
    state = session.execute(
        text("SELECT next_idx FROM ledger_stats_state WHERE id = 1 FOR UPDATE SKIP LOCKED")
    ).scalar()
    if state is None:
        return 0
    size = session.execute(text("SELECT tree_size FROM ledger_sequencer WHERE id = 1")).scalar_one()
    start, counted = int(state), 0
    for _ in range(max_steps):
        stop = min(int(size), start + step)
        if stop <= start:
            break
        session.execute(_REFRESH, {"start": start, "stop": stop})
        counted += stop - start
        start = stop
    if counted:
        session.execute(
            text("UPDATE ledger_stats_state SET next_idx = :n, updated_at = now() WHERE id = 1"),
            {"n": start},
        )
    return counted


def counted(session: Session) -> int:
    """How many entries the counts cover (every entry below this index)."""
    value = session.execute(text("SELECT next_idx FROM ledger_stats_state WHERE id = 1")).scalar()
    return int(value or 0)


def rebuild(session: Session) -> None:
    """Forget the counts and count everything again (after a restore, say)."""
    session.execute(text("DELETE FROM ledger_hourly_counts"))
    session.execute(text("UPDATE ledger_stats_state SET next_idx = 0 WHERE id = 1"))
    while refresh(session, max_steps=50):
        pass


@dataclass(frozen=True)
class Count:
    bucket: datetime
    group: dict[str, str | None]
    entries: int


def aggregate(
    session: Session,
    *,
    bucket: str = "day",
    since: datetime | None = None,
    until: datetime | None = None,
    group_by: tuple[str, ...] = ("verdict",),
    where: dict[str, str] | None = None,
    limit: int | None = None,
) -> list[Count]:
    """Entries per ``bucket`` (hour, day, month; UTC) grouped by any of kind, evidence kind,
    verdict, worker and image, optionally restricted to given values of those; at most
    ``limit`` rows, the earliest buckets first. Counts what has been counted: call
    :func:`refresh` first for an up-to-date answer."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    unknown = set(group_by) | set(where or {})
    if not unknown <= set(GROUPS):
        raise ValueError(f"group by and filter on {', '.join(GROUPS)} only")
    columns = ", ".join(group_by)
    clauses, params = ["TRUE"], dict[str, Any]()
    if since is not None:
        clauses.append("hour >= date_trunc('hour', CAST(:since AS timestamptz), 'UTC')")
        params["since"] = since
    if until is not None:
        clauses.append("hour < :until")
        params["until"] = until
    for n, (name, value) in enumerate(sorted((where or {}).items())):
        clauses.append(f"{name} = :w{n}")
        params[f"w{n}"] = value
    select_groups = f", {columns}" if group_by else ""
    statement = text(
        f"SELECT date_trunc('{bucket}', hour, 'UTC') AS bucket{select_groups}, "  # noqa: S608 - names from GROUPS/BUCKETS
        f"sum(entries) FROM ledger_hourly_counts WHERE {' AND '.join(clauses)} "
        f"GROUP BY 1{select_groups} ORDER BY 1{select_groups}"
        + (" LIMIT :limit" if limit is not None else "")
    )
    if limit is not None:
        params["limit"] = limit
    out = []
    for row in session.execute(statement, params):
        group = {name: (row[i + 1] or None) for i, name in enumerate(group_by)}
        out.append(Count(row[0], group, int(row[-1])))
    return out
