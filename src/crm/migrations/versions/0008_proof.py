"""identities: origin, and one holder per identifier instead of one row

Revision ID: 0008_proof
Revises: 0007_otp
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_proof"
down_revision: str | None = "0007_otp"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HOLDS = "verified_at IS NOT NULL OR origin = 'BACK_OFFICE'"
_COLUMNS = ["tenant_id", "mode", "provider", "identifier"]


def upgrade() -> None:
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("origin", sa.String(length=20), server_default="BACK_OFFICE", nullable=False)
        )
        batch_op.drop_constraint("uq_identities_tenant_id_mode_provider_identifier", type_="unique")
        batch_op.create_index("ix_identities_lookup", _COLUMNS, unique=False)
        batch_op.create_index(
            "uq_identities_holder",
            _COLUMNS,
            unique=True,
            sqlite_where=sa.text(_HOLDS),
            postgresql_where=sa.text(_HOLDS),
        )


def downgrade() -> None:
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.drop_index("uq_identities_holder")
        batch_op.drop_index("ix_identities_lookup")
        batch_op.create_unique_constraint(
            "uq_identities_tenant_id_mode_provider_identifier", _COLUMNS
        )
        batch_op.drop_column("origin")
