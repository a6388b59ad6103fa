"""contact documents, company profile, name day and loyalty identifiers (CRM.COM's v2 contact)

Revision ID: 0013_sdkwire
Revises: 0012_events
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm.db

revision: str = "0013_sdkwire"
down_revision: str | None = "0012_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STRINGS = (
    ("passport_number", 64),
    ("passport_country", 3),
    ("id_number", 64),
    ("id_country", 3),
    ("statutory_number", 64),
    ("registration_number", 64),
    ("registration_country", 3),
    ("tax_reference_number", 64),
    ("vat_registration_number", 64),
    ("industry_id", 64),
)
_UNIQUE = ("passport_number", "id_number", "statutory_number")


def upgrade() -> None:
    # Batch mode: SQLite cannot add a unique constraint to an existing table in place.
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("name_day_month", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("name_day_day", sa.Integer(), nullable=True))
        for name, length in _STRINGS:
            batch.add_column(sa.Column(name, sa.String(length=length), nullable=True))
        batch.add_column(sa.Column("passport_expiration", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("id_expiration", sa.BigInteger(), nullable=True))
        for name in ("sub_industries", "loyalty_identifiers"):
            batch.add_column(
                sa.Column(name, crm.db.PortableJSON, nullable=False, server_default=sa.text("'[]'"))
            )
        for name in _UNIQUE:
            batch.create_unique_constraint(
                f"uq_contacts_tenant_id_mode_{name}", ["tenant_id", "mode", name]
            )
    op.create_table(
        "contact_loyalty_identifiers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column(
            "contact_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("identifier", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_pk"],
            ["contacts.pk"],
            name=op.f("fk_contact_loyalty_identifiers_contact_pk_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_loyalty_identifiers")),
        sa.UniqueConstraint(
            "tenant_id",
            "mode",
            "identifier",
            name=op.f("uq_contact_loyalty_identifiers_tenant_id_mode_identifier"),
        ),
    )
    op.create_index(
        op.f("ix_contact_loyalty_identifiers_contact_pk"),
        "contact_loyalty_identifiers",
        ["contact_pk"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_contact_loyalty_identifiers_contact_pk"),
        table_name="contact_loyalty_identifiers",
    )
    op.drop_table("contact_loyalty_identifiers")
    with op.batch_alter_table("contacts") as batch:
        for name in _UNIQUE:
            batch.drop_constraint(f"uq_contacts_tenant_id_mode_{name}", type_="unique")
        for name in (
            "name_day_month",
            "name_day_day",
            "passport_expiration",
            "id_expiration",
            "sub_industries",
            "loyalty_identifiers",
            *(n for n, _ in _STRINGS),
        ):
            batch.drop_column(name)
