"""secret check value

Revision ID: 0003_ops
Revises: 0002_integ
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm.db

revision: str = "0003_ops"
down_revision: str | None = "0002_integ"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "secret_checks",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_secret_checks")),
    )


def downgrade() -> None:
    op.drop_table("secret_checks")
