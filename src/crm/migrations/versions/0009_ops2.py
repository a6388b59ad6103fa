"""message templates: a tenant's own words for each message purpose and language

Revision ID: 0009_ops2
Revises: 0008_proof
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm.db

revision: str = "0009_ops2"
down_revision: str | None = "0008_proof"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_templates",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("purpose", sa.String(length=30), nullable=False),
        sa.Column("language", sa.String(length=20), nullable=False),
        sa.Column("sms_text", sa.Text(), nullable=True),
        sa.Column("email_subject", sa.String(length=300), nullable=True),
        sa.Column("email_text", sa.Text(), nullable=True),
        sa.Column("email_html", sa.Text(), nullable=True),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_message_templates_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
        sa.UniqueConstraint(
            "tenant_id",
            "mode",
            "purpose",
            "language",
            name=op.f("uq_message_templates_tenant_id_mode_purpose_language"),
        ),
    )


def downgrade() -> None:
    op.drop_table("message_templates")
