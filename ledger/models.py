"""The ledger's tables, as SQLAlchemy 2 typed models. The schema changes only through
alembic (migrations/); tests/ledger/test_migrations.py proves the two agree.

* ``ledger_entries``: one row per entry, dense 0-based ``idx``; the canonical entry bytes,
  their leaf hash and the hash chain; the time of appending; index columns derived from
  the entry bytes (see :mod:`ledger.entry`) for the queries of the portal and the API.
* ``ledger_evidence``: the raw evidence (an attestation document) beside its entry; the entry
  bytes commit to its SHA-256.
* ``ledger_nodes``: every complete perfect subtree of level >= 1 (level 0 is
  ``ledger_entries.leaf_hash``), so any root or proof costs O(log n) reads.
* ``ledger_sequencer``: the single row that serialises appends (locked FOR UPDATE): tree size,
  chain head, and the compact range (right border) of the tree.
* ``ledger_checkpoints``: every signed checkpoint (C2SP signed note).
* ``ledger_latest_checkpoint``: the single row naming the latest checkpoint; it only moves
  forward, by compare-and-swap.

Entries, evidence, nodes and checkpoints are append-only in the database itself: triggers
reject UPDATE, DELETE and TRUNCATE (see the first migration).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "Checkpoint",
    "Endorsement",
    "Entry",
    "Evidence",
    "HourlyCount",
    "LatestCheckpoint",
    "Node",
    "Sequencer",
    "StatsState",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_HASH = LargeBinary


class Entry(Base):
    __tablename__ = "ledger_entries"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(_HASH)
    chain_hash: Mapped[bytes] = mapped_column(_HASH)
    appended_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Index columns, derived from the entry bytes (ledger.entry.INDEX_KEYS); never trusted
    # on their own: the audit re-derives them.
    kind: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(Text)
    image: Mapped[str | None] = mapped_column(Text)
    pcr0: Mapped[str | None] = mapped_column(Text)
    module_id: Mapped[str | None] = mapped_column(Text)
    result_hash: Mapped[str | None] = mapped_column(Text)
    evidence_kind: Mapped[str | None] = mapped_column(Text)
    evidence_sha256: Mapped[bytes | None] = mapped_column(_HASH)
    document_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("idx >= 0", name="idx_not_negative"),
        CheckConstraint("octet_length(leaf_hash) = 32", name="leaf_hash_size"),
        CheckConstraint("octet_length(chain_hash) = 32", name="chain_hash_size"),
        CheckConstraint(
            "evidence_sha256 IS NULL OR octet_length(evidence_sha256) = 32",
            name="evidence_sha256_size",
        ),
        # Idempotency: one entry per evidence digest and worker (ledger.append).
        Index(
            "uq_ledger_entries_evidence_sha256_worker",
            "evidence_sha256",
            text("coalesce(worker, '')"),
            unique=True,
            postgresql_where=text("evidence_sha256 IS NOT NULL"),
        ),
        Index("ix_ledger_entries_leaf_hash", "leaf_hash"),
        Index("ix_ledger_entries_result_hash", "result_hash"),
        # Filtered lists, newest first, one page at a time (keyset on idx): each filter
        # column leads an index that ends in idx, so a page is an index range scan.
        Index("ix_ledger_entries_appended_at_idx", "appended_at", "idx"),
        Index("ix_ledger_entries_kind_idx", "kind", "idx"),
        Index("ix_ledger_entries_verdict_idx", "verdict", "idx"),
        Index("ix_ledger_entries_worker_idx", "worker", "idx"),
        Index("ix_ledger_entries_image_idx", "image", "idx"),
        Index("ix_ledger_entries_pcr0_idx", "pcr0", "idx"),
        Index("ix_ledger_entries_module_id_idx", "module_id", "idx"),
        Index("ix_ledger_entries_evidence_kind_idx", "evidence_kind", "idx"),
        # An enclave instance ("i-...") is the part of a module_id before "-enc".
        Index("ix_ledger_entries_instance_idx", text("split_part(module_id, '-enc', 1)"), "idx"),
    )


class Evidence(Base):
    __tablename__ = "ledger_evidence"

    idx: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ledger_entries.idx"), primary_key=True, autoincrement=False
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Endorsement(Base):
    """What a verdict rests on beside its evidence (a certificate, a CRL, a TCB document),
    stored once by the SHA-256 of its bytes; the entries that used it name that digest."""

    __tablename__ = "ledger_endorsements"

    sha256: Mapped[bytes] = mapped_column(_HASH, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (CheckConstraint("octet_length(sha256) = 32", name="sha256_size"),)


class Node(Base):
    __tablename__ = "ledger_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(_HASH)

    __table_args__ = (
        CheckConstraint("level BETWEEN 1 AND 63", name="level_range"),
        CheckConstraint("idx >= 0", name="idx_not_negative"),
        CheckConstraint("octet_length(hash) = 32", name="hash_size"),
    )


class Sequencer(Base):
    __tablename__ = "ledger_sequencer"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    chain_head: Mapped[bytes] = mapped_column(_HASH)
    compact_range: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("tree_size >= 0", name="tree_size_not_negative"),
    )


class Checkpoint(Base):
    __tablename__ = "ledger_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(_HASH)
    chain_head: Mapped[bytes] = mapped_column(_HASH)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("tree_size >= 0", name="tree_size_not_negative"),
        CheckConstraint("octet_length(root_hash) = 32", name="root_hash_size"),
    )


class LatestCheckpoint(Base):
    __tablename__ = "ledger_latest_checkpoint"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    # Deferred, so that the compare-and-swap can move the pointer first (taking the row
    # lock) and the checkpoint it points to be inserted after, in the same transaction.
    tree_size: Mapped[int | None] = mapped_column(
        BigInteger,
        ForeignKey("ledger_checkpoints.tree_size", deferrable=True, initially="DEFERRED"),
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class HourlyCount(Base):
    """Entries per hour of appending, by kind, verdict, worker and image: derived from
    ``ledger_entries`` by :mod:`ledger.stats` (not part of what the ledger proves; it can be
    rebuilt from the entries at any time). Absent values are stored as ''."""

    __tablename__ = "ledger_hourly_counts"

    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    kind: Mapped[str] = mapped_column(Text, primary_key=True)
    evidence_kind: Mapped[str] = mapped_column(Text, primary_key=True, server_default="")
    verdict: Mapped[str] = mapped_column(Text, primary_key=True)
    worker: Mapped[str] = mapped_column(Text, primary_key=True)
    image: Mapped[str] = mapped_column(Text, primary_key=True)
    entries: Mapped[int] = mapped_column(BigInteger)


class StatsState(Base):
    """How far :class:`HourlyCount` has counted: every entry below ``next_idx``."""

    __tablename__ = "ledger_stats_state"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    next_idx: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)
