"""Evidence of every kind: endorsements kept content-addressed, the evidence kind indexed,
counted and in the policy.

Issue #11 turns the verifier into schemes (AWS Nitro, AMD SEV-SNP, and later TDX, TPM 2.0,
NVIDIA). What a verdict rests on beside the evidence itself (an SNP report's VCEK or VLEK,
certificates, CRLs) is kept in ``ledger_endorsements``, once per SHA-256, append-only like
the evidence; an entry names each one it used by that digest. ``ledger_entries.evidence_kind``
is a new index column, derived from the entry bytes like the others: existing rows are
filled here from their bytes (the append-only trigger is set aside for that one statement
per batch, as the owner may). The hourly counts gain the evidence kind and are rebuilt
from the entries (they are derived data). Reference images and the per-scheme settings
name their evidence kind; existing images are AWS Nitro enclave images.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "ledger_endorsements",
        sa.Column("sha256", sa.LargeBinary(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "octet_length(sha256) = 32", name=op.f("ck_ledger_endorsements_sha256_size")
        ),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_ledger_endorsements")),
    )
    op.execute(
        "CREATE TRIGGER ledger_endorsements_append_only BEFORE UPDATE OR DELETE ON "
        "ledger_endorsements FOR EACH ROW EXECUTE FUNCTION ledger_reject_change()"
    )
    op.execute(
        "CREATE TRIGGER ledger_endorsements_no_truncate BEFORE TRUNCATE ON ledger_endorsements "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()"
    )

    op.add_column("ledger_entries", sa.Column("evidence_kind", sa.Text(), nullable=True))
    _fill_evidence_kind()
    op.create_index(
        "ix_ledger_entries_evidence_kind_idx", "ledger_entries", ["evidence_kind", "idx"]
    )

    op.add_column(
        "ledger_hourly_counts",
        sa.Column("evidence_kind", sa.Text(), server_default="", nullable=False),
    )
    op.drop_constraint("pk_ledger_hourly_counts", "ledger_hourly_counts", type_="primary")
    op.execute("DELETE FROM ledger_hourly_counts")  # derived: counted again from the entries
    op.execute("UPDATE ledger_stats_state SET next_idx = 0")
    op.create_primary_key(
        "pk_ledger_hourly_counts",
        "ledger_hourly_counts",
        ["hour", "kind", "evidence_kind", "verdict", "worker", "image"],
    )

    op.add_column(
        "policy_images",
        sa.Column("evidence_kind", sa.Text(), server_default="aws-nitro-enclave", nullable=False),
    )
    op.add_column(
        "policy_images",
        sa.Column(
            "reference",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "policy_settings",
        sa.Column(
            "schemes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )


def _fill_evidence_kind() -> None:
    """The new column of every existing entry, from its own bytes (a migration must not
    change when application code does: the rule, a top-level string, is written out here)."""
    bind = op.get_bind()
    last = -1
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT idx, data FROM ledger_entries WHERE idx > :last AND kind = 'attestation' "
                "ORDER BY idx LIMIT :n"
            ),
            {"last": last, "n": _BATCH},
        ).all()
        if not rows:
            return
        last = int(rows[-1].idx)
        kinds = []
        for row in rows:
            value = json.loads(bytes(row.data)).get("evidence_kind")
            if isinstance(value, str):
                kinds.append((int(row.idx), value.replace("\x00", "\ufffd")))
        if kinds:
            bind.execute(
                sa.text("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only")
            )
            bind.execute(
                sa.text(
                    "UPDATE ledger_entries SET evidence_kind = v.kind FROM "
                    "unnest(CAST(:idx AS bigint[]), CAST(:kind AS text[])) AS v(idx, kind) "
                    "WHERE ledger_entries.idx = v.idx"
                ),
                {"idx": [i for i, _ in kinds], "kind": [k for _, k in kinds]},
            )
            bind.execute(
                sa.text("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only")
            )


def downgrade() -> None:
    op.drop_column("policy_settings", "schemes")
    op.drop_column("policy_images", "reference")
    op.drop_column("policy_images", "evidence_kind")
    op.drop_constraint("pk_ledger_hourly_counts", "ledger_hourly_counts", type_="primary")
    op.execute("DELETE FROM ledger_hourly_counts")
    op.execute("UPDATE ledger_stats_state SET next_idx = 0")
    op.drop_column("ledger_hourly_counts", "evidence_kind")
    op.create_primary_key(
        "pk_ledger_hourly_counts",
        "ledger_hourly_counts",
        ["hour", "kind", "verdict", "worker", "image"],
    )
    op.drop_index("ix_ledger_entries_evidence_kind_idx", table_name="ledger_entries")
    op.drop_column("ledger_entries", "evidence_kind")
    op.drop_table("ledger_endorsements")
