"""apple signing key: an identity provider may hold a team id, a key id and an encrypted
private key, to sign its own client secrets (Sign in with Apple)

Revision ID: 0017_apple
Revises: 0016_activity
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_apple"
down_revision: str | None = "0016_activity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("identity_providers") as batch:
        batch.add_column(sa.Column("team_id", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("key_id", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("private_key_encrypted", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("identity_providers") as batch:
        batch.drop_column("private_key_encrypted")
        batch.drop_column("key_id")
        batch.drop_column("team_id")
