"""Sign-in limits that nobody can turn into a lock-out: device cookies (OWASP).

Until now five failed sign-ins locked a name for fifteen minutes, from anywhere: one address
could lock every account out, administrators included (issue #10). After a successful
sign-in the browser now receives a device cookie; the database keeps its SHA-256 here. An
attempt that presents a device cookie of that user is limited on its own (failures per
device), so failures from elsewhere never lock a known device out; attempts without one are
limited per name and address, per address, and, far higher, per name. Failures record the
device they came from.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portal_devices",
        sa.Column("token_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "octet_length(token_sha256) = 32", name=op.f("ck_portal_devices_token_sha256_size")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["portal_users.id"], name=op.f("fk_portal_devices_user_id_portal_users")
        ),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_portal_devices")),
    )
    op.create_index(op.f("ix_portal_devices_user_id"), "portal_devices", ["user_id"], unique=False)
    op.create_index(
        op.f("ix_portal_devices_expires_at"), "portal_devices", ["expires_at"], unique=False
    )
    op.add_column(
        "portal_login_failures", sa.Column("device_sha256", sa.LargeBinary(), nullable=True)
    )
    op.create_index(
        "ix_portal_login_failures_device_sha256_at",
        "portal_login_failures",
        ["device_sha256", "at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_portal_login_failures_device_sha256_at", table_name="portal_login_failures")
    op.drop_column("portal_login_failures", "device_sha256")
    op.drop_index(op.f("ix_portal_devices_expires_at"), table_name="portal_devices")
    op.drop_index(op.f("ix_portal_devices_user_id"), table_name="portal_devices")
    op.drop_table("portal_devices")
