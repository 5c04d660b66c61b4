"""Appending entries: sequencing, hashing and storing, serialised by PostgreSQL.

``append(session, entries)`` MUST be called inside the caller's transaction; it flushes but
never commits, and an index it returns is durable only once the caller commits. Until then
no other transaction can see the entries, and a rollback (or a crash) leaves nothing behind:
a batch is stored whole or not at all.

Serialisation: the single ``ledger_sequencer`` row is locked FOR UPDATE for the rest of the
transaction, so concurrent appenders in any number of processes queue behind it; the row
holds the tree size, the chain head and the compact range, so an append reads nothing else
of the tree. A lock not obtained within ``lock_timeout`` raises :class:`LedgerBusy` (the
transaction is then aborted and must be rolled back). ``UNIQUE(idx)`` and the dense-index
invariants are a second line of defence: a race would fail loudly instead of forking.

Idempotency: an entry whose evidence is already in the ledger from the same submitter (the
entry's ``worker`` key; entries without one count as one submitter), or earlier in the same
batch, is not stored again; its existing index is returned, marked ``duplicate``. The same
evidence from another worker is that worker's own entry: who holds a copy of a document must
not be able to take its place in the ledger from the worker it belongs to.

Round trips, since the sequencer lock is held for all of them: one to begin, lock and look
up duplicates (pipeline mode), one to write. Batches of up to ``COPY_THRESHOLD`` new entries
are written by a single statement; larger ones by binary COPY, which keeps a 1000-entry
batch well under 100 ms.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy.orm import Session

from ledger.chain import next_chain_hash
from ledger.db import driver_connection
from ledger.entry import NewEntry, PreparedEntry, prepare
from ledger.errors import LedgerBusy, LedgerCorrupt
from ledger.merkle import CompactRange

__all__ = ["Appended", "append", "prepare_all"]

DEFAULT_LOCK_TIMEOUT = 5.0
#: Batches with more new entries than this are written with binary COPY (fastest per row);
#: smaller ones with a single statement (fewest round trips).
COPY_THRESHOLD = 64

_ENTRY_COLUMNS = (
    "idx", "data", "leaf_hash", "chain_hash", "kind", "verdict", "worker", "image", "pcr0",
    "module_id", "result_hash", "evidence_kind", "evidence_sha256", "document_time",
)  # fmt: skip
_ENTRY_TYPES = (
    "int8", "bytea", "bytea", "bytea", "text", "text", "text", "text", "text", "text", "text",
    "text", "bytea", "timestamptz",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Appended:
    index: int
    leaf_hash: bytes
    #: True if the evidence was already in the ledger: ``index`` is the existing entry's.
    duplicate: bool


def prepare_all(entries: Sequence[NewEntry]) -> list[PreparedEntry]:
    """Validate every entry first, so that a bad one rejects the call before any locking."""
    return [prepare(entry) for entry in entries]


def append(
    session: Session,
    entries: Sequence[NewEntry | PreparedEntry],
    *,
    lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
    stored: Container[bytes] = (),
) -> list[Appended]:
    """Append ``entries`` in order; return one :class:`Appended` per entry, in the same order.
    ``stored``: SHA-256 of endorsements known to be committed already (the table is
    append-only), which are not sent again (a RIM of 20 KB named by every GPU's entry).

    Raises :class:`~ledger.errors.InvalidEntry` for an entry that breaks the contract of
    :mod:`ledger.entry` (nothing is written), :class:`LedgerBusy` if the sequencer lock is not
    obtained within ``lock_timeout`` seconds. ``lock_timeout=None`` relies on the connection's
    own ``lock_timeout`` (see :func:`ledger.db.make_engine`) and sends two statements fewer.
    """
    prepared = [e if isinstance(e, PreparedEntry) else prepare(e) for e in entries]
    if not prepared:
        return []
    session.flush()
    raw = driver_connection(session)
    with raw.cursor() as cursor:
        size, chain, compact_range, known = _lock_and_look_up(raw, prepared, lock_timeout)
        tree = CompactRange.from_bytes(size, compact_range)

        results: list[Appended] = []
        entry_rows: list[tuple[object, ...]] = []
        evidence_rows: list[tuple[int, bytes]] = []
        node_rows: list[tuple[int, int, bytes]] = []
        endorsements: dict[bytes, bytes] = {}
        for entry in prepared:
            repeat = _repeat_key(entry)
            if repeat is not None and repeat in known:
                results.append(known[repeat])
                continue
            index = tree.size
            chain = next_chain_hash(chain, entry.leaf_hash)
            for (level, node_index), value in tree.append(entry.leaf_hash):
                node_rows.append((level, node_index, value))
            columns = entry.columns
            entry_rows.append(
                (
                    index,
                    entry.data,
                    entry.leaf_hash,
                    chain,
                    *(columns[name] for name in _ENTRY_COLUMNS[4:]),
                )
            )
            if entry.evidence is not None:
                evidence_rows.append((index, entry.evidence))
            endorsements.update((d, blob) for d, blob in entry.endorsements if d not in stored)
            if repeat is not None:
                known[repeat] = Appended(index, entry.leaf_hash, duplicate=True)
            results.append(Appended(index, entry.leaf_hash, duplicate=False))

        if not entry_rows:
            return results
        if endorsements:  # each once, however many entries name it; stored with them
            cursor.execute(
                _STORE_ENDORSEMENTS, (list(endorsements), list(endorsements.values())), binary=True
            )
        sequencer = (tree.size, chain, tree.to_bytes())
        if len(entry_rows) <= COPY_THRESHOLD:
            _write_in_one_statement(cursor, entry_rows, evidence_rows, node_rows, sequencer)
        else:
            _copy(cursor, "ledger_entries", _ENTRY_COLUMNS, _ENTRY_TYPES, entry_rows)
            if evidence_rows:
                _copy(cursor, "ledger_evidence", ("idx", "data"), ("int8", "bytea"), evidence_rows)
            if node_rows:
                _copy(cursor, "ledger_nodes", _NODE_COLUMNS, _NODE_TYPES, node_rows)
            cursor.execute(_ADVANCE_SEQUENCER, sequencer)
    return results


_LOCK = "SELECT tree_size, chain_head, compact_range FROM ledger_sequencer WHERE id = 1 FOR UPDATE"
_ADVANCE_SEQUENCER = (
    "UPDATE ledger_sequencer SET tree_size = %s, chain_head = %s, compact_range = %s, "
    "updated_at = now() WHERE id = 1"
)
# lock_timeout for the sequencer lock alone: the caller's setting is kept in a custom setting
# of the transaction and put back after the lock, so all of it travels in one round trip.
_SET_LOCK_TIMEOUT = (
    "SELECT set_config('attest_ledger.saved_lock_timeout', current_setting('lock_timeout'), "
    "true), set_config('lock_timeout', %s, true)"
)
_RESTORE_LOCK_TIMEOUT = (
    "SELECT set_config('lock_timeout', current_setting('attest_ledger.saved_lock_timeout'), true)"
)
_LOOK_UP = (
    "SELECT evidence_sha256, coalesce(worker, ''), idx, leaf_hash FROM ledger_entries "
    "WHERE evidence_sha256 = ANY(%s)"
)


def _repeat_key(entry: PreparedEntry) -> tuple[bytes, str] | None:
    """What makes an entry a repeat: its evidence digest and its submitter (as stored)."""
    if entry.evidence_sha256 is None:
        return None
    return entry.evidence_sha256, entry.columns.get("worker") or ""


def _lock_and_look_up(
    raw: psycopg.Connection[Any], prepared: Sequence[PreparedEntry], lock_timeout: float | None
) -> tuple[int, bytes, bytes, dict[tuple[bytes, str], Appended]]:
    """Lock the sequencer row for the rest of the transaction, then find which of these
    evidence digests are already stored, and by whom: one round trip (pipeline mode), BEGIN
    included.

    The look-up runs after the lock is granted, so it sees every entry committed before us;
    with ``lock_timeout`` the wait is bounded for this lock alone, otherwise the connection's
    default applies. Either way a lock not obtained in time raises :class:`LedgerBusy`.
    """
    digests = [p.evidence_sha256 for p in prepared if p.evidence_sha256 is not None]
    known: dict[tuple[bytes, str], Appended] = {}
    try:
        with (
            raw.pipeline(),
            raw.cursor() as setting,
            raw.cursor() as lock,
            raw.cursor() as look_up,
        ):
            if lock_timeout is not None:
                setting.execute(_SET_LOCK_TIMEOUT, (f"{max(1, int(lock_timeout * 1000))}ms",))
            lock.execute(_LOCK)
            if lock_timeout is not None:
                setting.execute(_RESTORE_LOCK_TIMEOUT)
            if digests:
                look_up.execute(_LOOK_UP, (digests,))
            size, chain, compact_range = _one(lock)  # the first fetch sends the lot
            if digests:
                for digest, worker, index, leaf in look_up.fetchall():
                    known[bytes(digest), worker] = Appended(index, bytes(leaf), duplicate=True)
    except psycopg.errors.LockNotAvailable as exc:
        raise LedgerBusy("the ledger sequencer stayed locked longer than the lock timeout") from exc
    return size, chain, compact_range, known


def _one(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    row = cursor.fetchone()
    if row is None:
        raise LedgerCorrupt("the sequencer row is missing: has the database been migrated?")
    return tuple(row)


def _write_in_one_statement(
    cursor: psycopg.Cursor[Any],
    entry_rows: Sequence[Sequence[object]],
    evidence_rows: Sequence[tuple[int, bytes]],
    node_rows: Sequence[tuple[int, int, bytes]],
    sequencer: tuple[int, bytes, bytes],
) -> None:
    """Entries, evidence, tree nodes and the sequencer in one statement (one round trip):
    for the small batches of a service under load, where COPY's three exchanges per table
    would cost more than the rows. Arrays travel in binary, so bytes are not hex-encoded."""
    columns = [list(column) for column in zip(*entry_rows, strict=True)]
    evidence = [list(column) for column in zip(*evidence_rows, strict=True)] or [[], []]
    nodes = [list(column) for column in zip(*node_rows, strict=True)] or [[], [], []]
    cursor.execute(_WRITE_SMALL_BATCH, (*columns, *evidence, *nodes, *sequencer), binary=True)


def _unnest(types: Sequence[str]) -> str:
    placeholders = ", ".join(f"%s::{t}[]" for t in types)  # types: constants of this module
    return f"SELECT * FROM unnest({placeholders})"  # noqa: S608


_STORE_ENDORSEMENTS = (
    "INSERT INTO ledger_endorsements (sha256, data) "
    "SELECT * FROM unnest(%s::bytea[], %s::bytea[]) ON CONFLICT (sha256) DO NOTHING"
)
_NODE_COLUMNS = ("level", "idx", "hash")
_NODE_TYPES = ("int2", "int8", "bytea")
_WRITE_SMALL_BATCH = (
    f"WITH entries AS (INSERT INTO ledger_entries ({', '.join(_ENTRY_COLUMNS)}) "
    f"{_unnest(_ENTRY_TYPES)}), "
    f"evidence AS (INSERT INTO ledger_evidence (idx, data) {_unnest(('int8', 'bytea'))}), "
    f"nodes AS (INSERT INTO ledger_nodes ({', '.join(_NODE_COLUMNS)}) {_unnest(_NODE_TYPES)}) "
    + _ADVANCE_SEQUENCER
)


def _copy(
    cursor: psycopg.Cursor[Any],
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[Sequence[object]],
) -> None:
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    with cursor.copy(statement) as copy:  # table and column names are constants above
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
