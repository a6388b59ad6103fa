"""identity providers: a tenant's OpenID Connect providers, and redirect sign-ins in progress

Revision ID: 0010_social
Revises: 0009_ops2
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import crm.db

revision: str = "0010_social"
down_revision: str | None = "0009_ops2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")  # type: ignore[return-value]


def upgrade() -> None:
    op.create_table(
        "identity_providers",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("client_id", sa.String(length=300), nullable=False),
        sa.Column("client_secret_encrypted", sa.Text(), nullable=True),
        sa.Column("audiences", _json(), nullable=False),
        sa.Column("applications", _json(), nullable=False),
        sa.Column("updated_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_identity_providers_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "mode", "type", name=op.f("pk_identity_providers")),
    )
    op.create_table(
        "oidc_flows",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("application_id", sa.String(length=36), nullable=True),
        sa.Column("provider_type", sa.String(length=20), nullable=False),
        sa.Column("redirect_url", sa.String(length=2000), nullable=False),
        sa.Column("secrets_encrypted", sa.Text(), nullable=False),
        sa.Column("link_contact_pk", sa.Integer(), nullable=True),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("called_back_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("result_hash", sa.String(length=64), nullable=True),
        sa.Column("result_contact_pk", sa.Integer(), nullable=True),
        sa.Column("result_expires_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("traded_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_oidc_flows_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_oidc_flows")),
        sa.UniqueConstraint("result_hash", name=op.f("uq_oidc_flows_result_hash")),
    )
    op.create_index("ix_oidc_flows_expires", "oidc_flows", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_oidc_flows_expires", table_name="oidc_flows")
    op.drop_table("oidc_flows")
    op.drop_table("identity_providers")
