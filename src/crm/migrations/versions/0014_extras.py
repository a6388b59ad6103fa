"""a contact's devices and picture, and a tenant's custom field definitions

Revision ID: 0014_extras
Revises: 0013_sdkwire
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import crm.db

revision: str = "0014_extras"
down_revision: str | None = "0013_sdkwire"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "contact_devices",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("contact_pk", _PK, nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("registration_token", sa.String(length=512), nullable=False),
        sa.Column("platform", sa.String(length=10), nullable=True),
        sa.Column("mac_address", sa.String(length=64), nullable=True),
        sa.Column("serial_number", sa.String(length=100), nullable=True),
        sa.Column("electronic_id", sa.String(length=100), nullable=True),
        sa.Column("application_id", sa.String(length=64), nullable=True),
        sa.Column("registered_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_pk"],
            ["contacts.pk"],
            name=op.f("fk_contact_devices_contact_pk_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_devices")),
        sa.UniqueConstraint(
            "tenant_id",
            "mode",
            "registration_token",
            name=op.f("uq_contact_devices_tenant_id_mode_registration_token"),
        ),
    )
    op.create_index(
        op.f("ix_contact_devices_contact_pk"), "contact_devices", ["contact_pk"], unique=False
    )
    op.create_table(
        "contact_pictures",
        sa.Column("contact_pk", _PK, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_pk"],
            ["contacts.pk"],
            name=op.f("fk_contact_pictures_contact_pk_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_pk", name=op.f("pk_contact_pictures")),
        sa.UniqueConstraint("name", name=op.f("uq_contact_pictures_name")),
    )
    op.create_table(
        "custom_field_definitions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value_type", sa.String(length=10), nullable=False),
        sa.Column("max_length", sa.Integer(), nullable=False),
        sa.Column(
            "allowed_values",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_custom_field_definitions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_field_definitions")),
        sa.UniqueConstraint(
            "tenant_id", "key", name=op.f("uq_custom_field_definitions_tenant_id_key")
        ),
    )
    _define_keys_in_use()


def _define_keys_in_use() -> None:
    """Keys contacts already carry become STRING definitions of the widest length, so that
    requiring definitions does not start refusing the writes that worked before this upgrade."""
    import datetime as dt
    import json
    import uuid

    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT DISTINCT tenant_id, custom_fields FROM contacts WHERE erased_at IS NULL")
    )
    keys: dict[str, set[str]] = {}
    for tenant_id, raw in rows:
        fields = json.loads(raw) if isinstance(raw, str | bytes) else raw
        for item in fields or []:
            if isinstance(item, dict) and isinstance(item.get("key"), str):
                keys.setdefault(tenant_id, set()).add(item["key"][:64])
    now = dt.datetime.now(dt.UTC)
    table = sa.table(
        "custom_field_definitions",
        sa.column("id", sa.String()),
        sa.column("tenant_id", sa.String()),
        sa.column("key", sa.String()),
        sa.column("value_type", sa.String()),
        sa.column("max_length", sa.Integer()),
        sa.column("allowed_values", sa.JSON()),
        sa.column("created_at", crm.db.UTCDateTime(timezone=True)),
        sa.column("updated_at", crm.db.UTCDateTime(timezone=True)),
    )
    values = [
        {
            "id": str(uuid.uuid4()),
            "tenant_id": tenant_id,
            "key": key,
            "value_type": "STRING",
            "max_length": 1024,
            "allowed_values": [],
            "created_at": now,
            "updated_at": now,
        }
        for tenant_id, tenant_keys in sorted(keys.items())
        for key in sorted(tenant_keys)
    ]
    if values:
        op.bulk_insert(table, values)


def downgrade() -> None:
    op.drop_table("custom_field_definitions")
    op.drop_table("contact_pictures")
    op.drop_index(op.f("ix_contact_devices_contact_pk"), table_name="contact_devices")
    op.drop_table("contact_devices")
