"""The document numbers' partial unique indexes: a number is still held by one contact of a
tenant and mode, contacts without one do not collide, and lookups by number use the index."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from crm.contacts import import_rows
from crm.contacts.models import Contact
from crm.runtime import Runtime
from crm.tenants.schemas import CreatedTenant

NUMBERS = ("passport_number", "id_number", "statutory_number")


def _row(tenant: CreatedTenant, mode: str, ref: str, **numbers: str | None) -> dict[str, object]:
    values = import_rows.contact_columns(
        tenant_id=tenant.id,
        mode=mode,
        fields={},
        contact_id=ref,
        code=ref,
        contact_type="PERSON",
        now=dt.datetime.now(dt.UTC),
    )
    values.update(numbers)
    return values


@pytest.mark.parametrize("column", NUMBERS)
async def test_a_number_is_held_once_and_absent_numbers_never_collide(
    runtime: Runtime, tenant: CreatedTenant, column: str
) -> None:
    table = Contact.__table__
    async with runtime.sessions() as session:
        # Without a number: any number of contacts.
        await session.execute(
            insert(table), [_row(tenant, "live", f"n-{i}", **{column: None}) for i in range(3)]
        )
        await session.execute(insert(table), [_row(tenant, "live", "a", **{column: "AB123"})])
        # The same number in the other mode is another contact's.
        await session.execute(insert(table), [_row(tenant, "test", "a", **{column: "AB123"})])
        await session.commit()
    async with runtime.sessions() as session:
        with pytest.raises(IntegrityError):
            await session.execute(insert(table), [_row(tenant, "live", "b", **{column: "AB123"})])
        await session.rollback()


async def test_lookups_by_number_use_the_partial_indexes(
    runtime: Runtime, tenant: CreatedTenant, backend: str
) -> None:
    async with runtime.sessions() as session:
        for column in NUMBERS:
            query = (
                f"SELECT pk FROM contacts WHERE tenant_id = :t AND mode = 'live' "
                f"AND {column} = :n LIMIT 1"
            )
            if backend == "postgresql":
                # A small table is cheaper to scan: ask whether the index can serve at all.
                await session.execute(text("SET LOCAL enable_seqscan = off"))
                plan = (await session.execute(text(f"EXPLAIN {query}"), {"t": "x", "n": "A"})).all()
            else:
                plan = (
                    await session.execute(text(f"EXPLAIN QUERY PLAN {query}"), {"t": "x", "n": "A"})
                ).all()
            assert f"uq_contacts_tenant_id_mode_{column}" in " ".join(map(str, plan))
