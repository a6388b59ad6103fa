"""failure counters apart from identities, decoy challenges, the client of each code

Revision ID: 0007_otp
Revises: 0006_idem
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm.db

revision: str = "0007_otp"
down_revision: str | None = "0006_idem"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "failure_counters",
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("locked_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_failure_counters")),
    )
    op.create_table(
        "otp_decoys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("application_id", sa.String(length=36), nullable=True),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=30), nullable=False),
        sa.Column("client_hash", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_otp_decoys")),
    )
    with op.batch_alter_table("otp_decoys", schema=None) as batch_op:
        batch_op.create_index(
            "ix_otp_decoys_subject_created", ["subject", "created_at"], unique=False
        )
    with op.batch_alter_table("otp_challenges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("otp_challenges", schema=None) as batch_op:
        batch_op.drop_column("client_hash")
    with op.batch_alter_table("otp_decoys", schema=None) as batch_op:
        batch_op.drop_index("ix_otp_decoys_subject_created")
    op.drop_table("otp_decoys")
    op.drop_table("failure_counters")
