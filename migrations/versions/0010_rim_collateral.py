"""NVIDIA RIMs kept as collateral (issue #14).

``collateral_documents`` also keeps NVIDIA reference integrity manifests (kind ``rim``): the
driver or VBIOS version a RIM describes goes in the new ``version`` column (lowercased, as a
report prints it), so that a device's missing RIM is chosen by kind (``tee``), version and
RIM id (``name``). Intel documents leave it NULL.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("collateral_documents", sa.Column("version", sa.Text(), nullable=True))
    op.create_index(
        "ix_collateral_documents_rim",
        "collateral_documents",
        ["kind", "tee", "version", "issued_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_collateral_documents_rim", table_name="collateral_documents")
    op.drop_column("collateral_documents", "version")
