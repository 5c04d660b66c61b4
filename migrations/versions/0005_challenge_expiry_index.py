"""Challenges are deleted an hour after they expire: index their expiry for the sweep.

Until now no challenge was ever deleted, and one worker token could create ten thousand a
second (issue #10). The checkpoint publisher now deletes, in bounded batches, those that
expired more than an hour ago (attest_ledger.challenges.sweep); this index keeps each batch an
index range scan however large the table has grown.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_challenges_expires_at", "challenges", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_challenges_expires_at", table_name="challenges")
