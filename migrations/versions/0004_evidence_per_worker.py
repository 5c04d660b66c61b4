"""Idempotency per worker: the same evidence may be recorded once for each worker.

Until now one evidence digest could appear in the ledger once, so a worker holding another
worker's fresh document could record it first and the rightful owner then got a permanent
409 (issue #10). The ledger now treats an entry as a repeat only when the same evidence comes
again from the same worker (its ``worker`` index column; entries without one count as one
submitter); a document replayed by another worker is recorded as that worker's own verdict.

Downgrading fails if two workers have recorded the same evidence (the old index cannot hold
it); that is the point of this revision.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "uq_ledger_entries_evidence_sha256_worker",
        "ledger_entries",
        ["evidence_sha256", sa.text("coalesce(worker, '')")],
        unique=True,
        postgresql_where=sa.text("evidence_sha256 IS NOT NULL"),
    )
    op.drop_index("uq_ledger_entries_evidence_sha256", table_name="ledger_entries")


def downgrade() -> None:
    op.create_index(
        "uq_ledger_entries_evidence_sha256",
        "ledger_entries",
        ["evidence_sha256"],
        unique=True,
        postgresql_where=sa.text("evidence_sha256 IS NOT NULL"),
    )
    op.drop_index("uq_ledger_entries_evidence_sha256_worker", table_name="ledger_entries")
