"""outbox: room for the possibly_sent status; blank the bodies of finished live messages

Revision ID: 0002_integ
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_integ"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.alter_column(
            "status",
            existing_type=sa.String(length=10),
            type_=sa.String(length=20),
            existing_nullable=False,
        )
    # Bodies written before encryption at rest are plain text holding codes and links. New
    # bodies are sealed with the server secret, which a migration does not have; the sent and
    # cancelled ones need no body at all, so they lose it now (queued and failed ones keep theirs
    # in the clear until they are sent, as the worker reads both forms).
    op.execute(
        "UPDATE outbox_messages SET body_text = '', body_html = NULL "
        "WHERE mode = 'live' AND status IN ('sent', 'cancelled')"
    )


def downgrade() -> None:
    op.execute("UPDATE outbox_messages SET status = 'failed' WHERE status = 'possibly_sent'")
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.alter_column(
            "status",
            existing_type=sa.String(length=20),
            type_=sa.String(length=10),
            existing_nullable=False,
        )
