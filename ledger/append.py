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

Idempotency: an entry whose evidence digest is already in the ledger (or earlier in the same
batch) is not stored again; its existing index is returned, marked ``duplicate``.

Rows are written with binary COPY, which keeps a 1000-entry batch well under 100 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ledger.chain import next_chain_hash
from ledger.entry import NewEntry, PreparedEntry, prepare
from ledger.errors import LedgerBusy, LedgerCorrupt
from ledger.merkle import CompactRange
from ledger.models import Entry, Sequencer

__all__ = ["Appended", "append", "prepare_all"]

DEFAULT_LOCK_TIMEOUT = 5.0

_ENTRY_COLUMNS = (
    "idx", "data", "leaf_hash", "chain_hash", "kind", "verdict", "worker", "image", "pcr0",
    "module_id", "result_hash", "evidence_sha256", "document_time",
)  # fmt: skip
_ENTRY_TYPES = (
    "int8", "bytea", "bytea", "bytea", "text", "text", "text", "text", "text", "text", "text",
    "bytea", "timestamptz",
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
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> list[Appended]:
    """Append ``entries`` in order; return one :class:`Appended` per entry, in the same order.

    Raises :class:`~ledger.errors.InvalidEntry` for an entry that breaks the contract of
    :mod:`ledger.entry` (nothing is written), :class:`LedgerBusy` if the sequencer lock is not
    obtained within ``lock_timeout`` seconds.
    """
    prepared = [e if isinstance(e, PreparedEntry) else prepare(e) for e in entries]
    if not prepared:
        return []
    session.flush()
    connection = session.connection()
    size, chain, compact_range = _lock_sequencer(connection, lock_timeout)
    tree = CompactRange.from_bytes(size, compact_range)
    known = _already_stored(connection, prepared)

    results: list[Appended] = []
    entry_rows: list[tuple[object, ...]] = []
    evidence_rows: list[tuple[int, bytes]] = []
    node_rows: list[tuple[int, int, bytes]] = []
    for entry in prepared:
        digest = entry.evidence_sha256
        if digest is not None and digest in known:
            results.append(known[digest])
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
        appended = Appended(index, entry.leaf_hash, duplicate=False)
        if digest is not None:
            known[digest] = Appended(index, entry.leaf_hash, duplicate=True)
        results.append(appended)

    if entry_rows:
        _store(connection, entry_rows, evidence_rows, node_rows)
        connection.execute(
            update(Sequencer)
            .where(Sequencer.id == 1)
            .values(
                tree_size=tree.size,
                chain_head=chain,
                compact_range=tree.to_bytes(),
                updated_at=func.now(),
            )
        )
    return results


def _lock_sequencer(connection: Connection, lock_timeout: float) -> tuple[int, bytes, bytes]:
    """Lock the sequencer row for the rest of the transaction, waiting at most lock_timeout."""
    previous = connection.execute(text("SELECT current_setting('lock_timeout')")).scalar()
    connection.execute(
        text("SELECT set_config('lock_timeout', :value, true)"),
        {"value": f"{max(1, int(lock_timeout * 1000))}ms"},
    )
    try:
        state = connection.execute(
            select(Sequencer.tree_size, Sequencer.chain_head, Sequencer.compact_range)
            .where(Sequencer.id == 1)
            .with_for_update()
        ).one()
    except OperationalError as exc:
        if isinstance(exc.orig, psycopg.errors.LockNotAvailable):
            raise LedgerBusy(
                f"the ledger sequencer stayed locked for more than {lock_timeout:g} s"
            ) from exc
        raise
    connection.execute(text("SELECT set_config('lock_timeout', :value, true)"), {"value": previous})
    return state.tree_size, state.chain_head, state.compact_range


def _already_stored(
    connection: Connection, prepared: Sequence[PreparedEntry]
) -> dict[bytes, Appended]:
    """The entries already in the ledger for these evidence digests, by digest."""
    digests = [p.evidence_sha256 for p in prepared if p.evidence_sha256 is not None]
    known: dict[bytes, Appended] = {}
    if digests:
        for digest, index, leaf in connection.execute(
            select(Entry.evidence_sha256, Entry.idx, Entry.leaf_hash).where(
                Entry.evidence_sha256.in_(digests)
            )
        ):
            if digest is not None:
                known[digest] = Appended(index, leaf, duplicate=True)
    return known


def _store(
    connection: Connection,
    entry_rows: Sequence[Sequence[object]],
    evidence_rows: Sequence[Sequence[object]],
    node_rows: Sequence[Sequence[object]],
) -> None:
    raw = connection.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise LedgerCorrupt("the ledger needs the psycopg 3 driver")
    with raw.cursor() as cursor:
        _copy(cursor, "ledger_entries", _ENTRY_COLUMNS, _ENTRY_TYPES, entry_rows)
        if evidence_rows:
            _copy(cursor, "ledger_evidence", ("idx", "data"), ("int8", "bytea"), evidence_rows)
        if node_rows:
            _copy(
                cursor,
                "ledger_nodes",
                ("level", "idx", "hash"),
                ("int2", "int8", "bytea"),
                node_rows,
            )


def _copy(
    cursor: psycopg.Cursor[tuple[object, ...]],
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
