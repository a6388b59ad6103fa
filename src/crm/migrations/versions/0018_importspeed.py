"""importspeed: the document numbers' unique indexes leave out contacts without one

Revision ID: 0018_importspeed
Revises: 0017_apple
Create Date: 2026-11-29

Most contacts hold no passport, id or statutory number, yet each of the three unique
constraints took an index entry for every contact written (NULLs never collide). Partial unique
indexes (`WHERE <number> IS NOT NULL`, on PostgreSQL and SQLite) refuse the same duplicates and
skip those entries: three of the ~23 index entries an imported contact costs. Lookups by number
(`<number> = ...`) imply the predicate, so they use the partial index as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_importspeed"
down_revision: str | None = "0017_apple"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NUMBERS = ("passport_number", "id_number", "statutory_number")


def _name(column: str) -> str:
    return f"uq_contacts_tenant_id_mode_{column}"


def upgrade() -> None:
    # Batch mode: SQLite drops a table's unique constraint only by rebuilding the table.
    with op.batch_alter_table("contacts") as batch:
        for column in _NUMBERS:
            batch.drop_constraint(_name(column), type_="unique")
    for column in _NUMBERS:
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            _name(column),
            "contacts",
            ["tenant_id", "mode", column],
            unique=True,
            postgresql_where=where,
            sqlite_where=where,
        )


def downgrade() -> None:
    for column in _NUMBERS:
        op.drop_index(_name(column), table_name="contacts")
    with op.batch_alter_table("contacts") as batch:
        for column in _NUMBERS:
            batch.create_unique_constraint(_name(column), ["tenant_id", "mode", column])
