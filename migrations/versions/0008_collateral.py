"""Intel DCAP collateral kept by the service (issue #12).

``collateral_documents`` holds each TCB info, QE identity, CRL and TCB Signing certificate
once, by SHA-256, whoever brought it (a worker with its quote, an operator's import, a fetch
from a configured PCCS), with what it says about itself (TEE, FMSPC, issuer, issue date,
next update) to choose the one that judges a quote. It is a cache, not the record: what
judged an entry is stored in ``ledger_endorsements`` and named in the entry.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "collateral_documents",
        sa.Column("sha256", sa.LargeBinary(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("tee", sa.Text(), nullable=True),
        sa.Column("fmspc", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint(
            "octet_length(sha256) = 32", name=op.f("ck_collateral_documents_sha256_size")
        ),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_collateral_documents")),
    )
    op.create_index(
        "ix_collateral_documents_choice",
        "collateral_documents",
        ["kind", "tee", "fmspc", "name", "issued_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_collateral_documents_choice", table_name="collateral_documents")
    op.drop_table("collateral_documents")
