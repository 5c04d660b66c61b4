"""The ledger: entries, evidence, stored subtree hashes, sequencer, checkpoints.

Append-only in the database itself: triggers reject UPDATE, DELETE and TRUNCATE on entries,
evidence, nodes and checkpoints; the two single-row coordination tables (sequencer, latest
checkpoint) may only move forward and can never be deleted.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ledger.chain.GENESIS, written out: a migration must not change when application code does.
GENESIS = hashlib.sha256(b"attestation-ledger:chain:v1").digest()

APPEND_ONLY = ("ledger_entries", "ledger_evidence", "ledger_nodes", "ledger_checkpoints")
FORWARD_ONLY = ("ledger_sequencer", "ledger_latest_checkpoint")

REJECT_CHANGE = """
CREATE FUNCTION ledger_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

FORWARD_ONLY_FUNCTION = """
CREATE FUNCTION ledger_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id
       OR (OLD.tree_size IS NOT NULL AND (NEW.tree_size IS NULL OR NEW.tree_size < OLD.tree_size))
    THEN
        RAISE EXCEPTION 'the ledger only moves forward: % may not go from % to %',
            TG_TABLE_NAME, OLD.tree_size, NEW.tree_size
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("chain_hash", sa.LargeBinary(), nullable=False),
        sa.Column(
            "appended_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column("verdict", sa.Text(), nullable=True),
        sa.Column("worker", sa.Text(), nullable=True),
        sa.Column("image", sa.Text(), nullable=True),
        sa.Column("pcr0", sa.Text(), nullable=True),
        sa.Column("module_id", sa.Text(), nullable=True),
        sa.Column("result_hash", sa.Text(), nullable=True),
        sa.Column("evidence_sha256", sa.LargeBinary(), nullable=True),
        sa.Column("document_time", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("idx >= 0", name=op.f("ck_ledger_entries_idx_not_negative")),
        sa.CheckConstraint(
            "octet_length(leaf_hash) = 32", name=op.f("ck_ledger_entries_leaf_hash_size")
        ),
        sa.CheckConstraint(
            "octet_length(chain_hash) = 32", name=op.f("ck_ledger_entries_chain_hash_size")
        ),
        sa.CheckConstraint(
            "evidence_sha256 IS NULL OR octet_length(evidence_sha256) = 32",
            name=op.f("ck_ledger_entries_evidence_sha256_size"),
        ),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_ledger_entries")),
    )
    op.create_index(
        "uq_ledger_entries_evidence_sha256",
        "ledger_entries",
        ["evidence_sha256"],
        unique=True,
        postgresql_where=sa.text("evidence_sha256 IS NOT NULL"),
    )
    op.create_index("ix_ledger_entries_leaf_hash", "ledger_entries", ["leaf_hash"])
    op.create_index("ix_ledger_entries_result_hash", "ledger_entries", ["result_hash"])
    op.create_index("ix_ledger_entries_appended_at", "ledger_entries", ["appended_at"])

    op.create_table(
        "ledger_evidence",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["idx"], ["ledger_entries.idx"], name=op.f("fk_ledger_evidence_idx_ledger_entries")
        ),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_ledger_evidence")),
    )

    op.create_table(
        "ledger_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("level BETWEEN 1 AND 63", name=op.f("ck_ledger_nodes_level_range")),
        sa.CheckConstraint("idx >= 0", name=op.f("ck_ledger_nodes_idx_not_negative")),
        sa.CheckConstraint("octet_length(hash) = 32", name=op.f("ck_ledger_nodes_hash_size")),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_ledger_nodes")),
    )

    op.create_table(
        "ledger_sequencer",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("chain_head", sa.LargeBinary(), nullable=False),
        sa.Column("compact_range", sa.LargeBinary(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_ledger_sequencer_single_row")),
        sa.CheckConstraint(
            "tree_size >= 0", name=op.f("ck_ledger_sequencer_tree_size_not_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_sequencer")),
    )

    op.create_table(
        "ledger_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("chain_head", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "tree_size >= 0", name=op.f("ck_ledger_checkpoints_tree_size_not_negative")
        ),
        sa.CheckConstraint(
            "octet_length(root_hash) = 32", name=op.f("ck_ledger_checkpoints_root_hash_size")
        ),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_ledger_checkpoints")),
    )

    op.create_table(
        "ledger_latest_checkpoint",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_ledger_latest_checkpoint_single_row")),
        sa.ForeignKeyConstraint(
            ["tree_size"],
            ["ledger_checkpoints.tree_size"],
            name=op.f("fk_ledger_latest_checkpoint_tree_size_ledger_checkpoints"),
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_latest_checkpoint")),
    )

    op.execute(
        sa.text(
            "INSERT INTO ledger_sequencer (id, tree_size, chain_head, compact_range) "
            "VALUES (1, 0, :genesis, '')"
        ).bindparams(sa.bindparam("genesis", GENESIS, type_=sa.LargeBinary()))
    )
    op.execute("INSERT INTO ledger_latest_checkpoint (id, tree_size) VALUES (1, NULL)")

    op.execute(REJECT_CHANGE)
    op.execute(FORWARD_ONLY_FUNCTION)
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_reject_change()"
        )
    for table in (*APPEND_ONLY, *FORWARD_ONLY):
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()"
        )
    for table in FORWARD_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_reject_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_forward_only BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_forward_only()"
        )


def downgrade() -> None:
    # Dropping a table drops its triggers; the order respects the foreign keys.
    for table in (
        "ledger_latest_checkpoint",
        "ledger_sequencer",
        "ledger_checkpoints",
        "ledger_nodes",
        "ledger_evidence",
        "ledger_entries",
    ):
        op.drop_table(table)
    op.execute("DROP FUNCTION ledger_forward_only()")
    op.execute("DROP FUNCTION ledger_reject_change()")
