"""TPM attestation keys enrolled by an operator (issue #13).

``tpm_enrolments`` is the index of the ``tpm_enrolment`` ledger entries: one row per enrolled
attestation key (AK), by the SHA-256 of its SubjectPublicKeyInfo, with the name the operator
gave it, the EK certificate given with it (if any), and the entries that enrolled and revoked
it. The ledger entries are the record; this table only answers "is this AK enrolled?"
quickly. A revoked AK stays, revoked; it is never enrolled again under another name.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tpm_enrolments",
        sa.Column("ak_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("ak_public", sa.LargeBinary(), nullable=False),
        sa.Column("ek_certificate_sha256", sa.LargeBinary(), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enrolled_index", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_index", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("octet_length(ak_sha256) = 32", name=op.f("ck_tpm_enrolments_ak_size")),
        sa.CheckConstraint(
            "(revoked_at IS NULL) = (revoked_index IS NULL)",
            name=op.f("ck_tpm_enrolments_revocation_whole"),
        ),
        sa.PrimaryKeyConstraint("ak_sha256", name=op.f("pk_tpm_enrolments")),
        sa.UniqueConstraint("name", name=op.f("uq_tpm_enrolments_name")),
    )


def downgrade() -> None:
    op.drop_table("tpm_enrolments")
