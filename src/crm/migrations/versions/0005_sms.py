"""tenant settings and the SMS daily counts

Revision ID: 0005_sms
Revises: 0004_ident
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import crm.db

revision: str = "0005_sms"
down_revision: str | None = "0004_ident"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        # Existing tenants start with no overrides.
        batch_op.add_column(
            sa.Column(
                "settings",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default=sa.text("'{}'"),
            )
        )
    op.create_table(
        "sms_daily_counts",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("day", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "mode", "day", name=op.f("pk_sms_daily_counts")),
    )


def downgrade() -> None:
    op.drop_table("sms_daily_counts")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("settings")
