"""Reading the ledger: entries, tree state, roots and proofs, each in O(log n) stored hashes.

Every function takes the caller's session and reads only committed state. Proofs are built
from stored perfect subtrees (:mod:`ledger.merkle`), fetched in one query, never by reading
all leaves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ledger.chain import GENESIS
from ledger.errors import EntryNotFound, LedgerCorrupt, TreeSizeUnavailable
from ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeID,
    consistency_ranges,
    hash_ranges,
    inclusion_ranges,
)
from ledger.models import Endorsement, Entry, Evidence, Sequencer

__all__ = [
    "StoredEntry",
    "TreeState",
    "chain_head_at",
    "consistency_proof",
    "get_endorsement",
    "get_entry",
    "get_evidence",
    "inclusion_proof",
    "index_of_leaf",
    "read_nodes",
    "root_at",
    "tree_state",
]


@dataclass(frozen=True, slots=True)
class TreeState:
    size: int
    chain_head: bytes
    compact: CompactRange

    @property
    def root(self) -> bytes:
        return self.compact.root()


@dataclass(frozen=True, slots=True)
class StoredEntry:
    index: int
    data: bytes
    leaf_hash: bytes
    chain_hash: bytes
    appended_at: datetime
    evidence_sha256: bytes | None


def tree_state(session: Session) -> TreeState:
    row = session.execute(
        select(Sequencer.tree_size, Sequencer.chain_head, Sequencer.compact_range).where(
            Sequencer.id == 1
        )
    ).one_or_none()
    if row is None:
        raise LedgerCorrupt("the sequencer row is missing: has the database been migrated?")
    try:
        compact = CompactRange.from_bytes(row.tree_size, row.compact_range)
    except ValueError as exc:
        raise LedgerCorrupt(f"the sequencer's compact range is damaged: {exc}") from None
    return TreeState(row.tree_size, row.chain_head, compact)


def read_nodes(session: Session, nodes: Sequence[NodeID]) -> dict[NodeID, bytes]:
    """The stored hashes of ``nodes``; level 0 comes from the entries' leaf hashes."""
    leaves = [index for level, index in nodes if level == 0]
    inner = [(level, index) for level, index in nodes if level > 0]
    found: dict[NodeID, bytes] = {}
    if leaves:
        for index, value in session.execute(
            select(Entry.idx, Entry.leaf_hash).where(Entry.idx.in_(leaves))
        ):
            found[(0, index)] = value
    if inner:
        rows = session.execute(
            text(
                "SELECT n.level, n.idx, n.hash FROM ledger_nodes n "
                "JOIN unnest(CAST(:levels AS smallint[]), CAST(:idxs AS bigint[])) "
                "AS wanted(level, idx) ON n.level = wanted.level AND n.idx = wanted.idx"
            ),
            {"levels": [level for level, _ in inner], "idxs": [index for _, index in inner]},
        )
        for level, index, value in rows:
            found[(level, index)] = value
    missing = [node for node in nodes if node not in found]
    if missing:
        raise LedgerCorrupt(f"stored subtree hash(es) missing: {missing[:5]}")
    return found


def _reader(session: Session) -> _NodeReader:
    return _NodeReader(session)


class _NodeReader:
    def __init__(self, session: Session) -> None:
        self.session = session

    def __call__(self, nodes: Sequence[NodeID]) -> Mapping[NodeID, bytes]:
        return read_nodes(self.session, nodes)


def _check_size(session: Session, size: int) -> int:
    current = tree_state(session).size
    if not 0 <= size <= current:
        raise TreeSizeUnavailable(f"tree size {size} is not available; the tree has {current}")
    return current


def root_at(session: Session, size: int) -> bytes:
    """The root hash of the first ``size`` entries."""
    _check_size(session, size)
    if size == 0:
        return EMPTY_ROOT
    return hash_ranges([(0, size)], _reader(session))[0]


def chain_head_at(session: Session, size: int) -> bytes:
    """The chain hash after ``size`` entries (GENESIS for 0)."""
    if size == 0:
        return GENESIS
    value = session.execute(select(Entry.chain_hash).where(Entry.idx == size - 1)).scalar()
    if value is None:
        raise TreeSizeUnavailable(f"tree size {size} is not available")
    return value


def inclusion_proof(session: Session, index: int, size: int) -> list[bytes]:
    """The RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries."""
    _check_size(session, size)
    if not 0 <= index < size:
        raise EntryNotFound(f"entry {index} is not in a tree of size {size}")
    return hash_ranges(inclusion_ranges(index, size), _reader(session))


def consistency_proof(session: Session, size1: int, size2: int) -> list[bytes]:
    """The RFC 9162 consistency proof from ``size1`` to ``size2`` (0 < size1 <= size2)."""
    _check_size(session, size2)
    if not 0 < size1 <= size2:
        raise TreeSizeUnavailable(
            f"no consistency proof from size {size1} to size {size2} (need 0 < first <= second)"
        )
    return hash_ranges(consistency_ranges(size1, size2), _reader(session))


def get_entry(session: Session, index: int) -> StoredEntry:
    row = session.execute(
        select(
            Entry.idx,
            Entry.data,
            Entry.leaf_hash,
            Entry.chain_hash,
            Entry.appended_at,
            Entry.evidence_sha256,
        ).where(Entry.idx == index)
    ).one_or_none()
    if row is None:
        raise EntryNotFound(f"no entry at index {index}")
    return StoredEntry(*row)


def get_evidence(session: Session, index: int) -> bytes | None:
    """The evidence stored beside entry ``index``, or None if it has none."""
    get_entry(session, index)
    return session.execute(select(Evidence.data).where(Evidence.idx == index)).scalar()


def get_endorsement(session: Session, sha256: bytes) -> bytes | None:
    """The endorsement stored under this SHA-256, or None."""
    return session.execute(select(Endorsement.data).where(Endorsement.sha256 == sha256)).scalar()


def index_of_leaf(session: Session, leaf_hash: bytes) -> int | None:
    """The first index whose leaf hash is ``leaf_hash``, for lookups by hash."""
    return session.execute(
        select(Entry.idx).where(Entry.leaf_hash == leaf_hash).order_by(Entry.idx).limit(1)
    ).scalar()
