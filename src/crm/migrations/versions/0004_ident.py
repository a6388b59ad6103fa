"""re-key stored email and phone identifiers with the IDNA 2008 and country phone rules

Revision ID: 0004_ident
Revises: 0003_ops
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_ident"
down_revision: str | None = "0003_ops"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Data only: keys stored under the old rules (x@faß.de kept as "x@fass.de", "+357099..."
    # apart from "+35799...") are recomputed so that lookups, which use today's rules, find them.
    from crm.identities.rekey import rekey_identifiers

    rekey_identifiers(op.get_bind())


def downgrade() -> None:
    # The old keys merged different people's addresses; they are not restored.
    pass
