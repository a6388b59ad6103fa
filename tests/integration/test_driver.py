"""crm.driver: statements compiled once and run on the session's own transaction.

On PostgreSQL they go straight to asyncpg; on SQLite through the session. Either way a statement
must see and be undone with the rest of the transaction, answer rows by column name, and fail
with SQLAlchemy's exceptions.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from crm import driver
from crm.contacts import service as contacts
from crm.contacts.contact_fields import ContactFields
from crm.contacts.models import Contact
from crm.errors import ServiceUnavailable
from crm.events.models import Event
from crm.identities.models import Identity
from crm.ids import uuid7
from crm.runtime import Runtime

_NAMED = driver.rows_of(Contact, Contact.pk == bindparam("pk"))
_LOCKED = driver.rows_of(Contact, Contact.pk == bindparam("pk"), lock=True)
_RENAME = driver.Statement(
    update(driver.table_of(Contact))
    .where(driver.table_of(Contact).c.pk == bindparam("key"))
    .values(first_name=bindparam("name"))
)
_EVENT = driver.rows_of(Event, Event.id == bindparam("id"))
_OF_TYPES = driver.rows_of(Event, driver.any_of(Event.type, ("a.one", "a.two")))


async def _contact(runtime: Runtime, tenant_id: str, name: str = "Ann") -> int:
    async with runtime.sessions() as db:
        contact = await contacts.create(
            db,
            runtime.clock,
            tenant_id=tenant_id,
            mode="test",
            fields=ContactFields(first_name=name),
            source="TEST",
            actor="test",
        )
        await db.commit()
        return contact.pk


async def test_a_statement_runs_inside_the_sessions_transaction(runtime: Runtime, tenant) -> None:
    pk = await _contact(runtime, tenant.id)
    async with runtime.sessions() as db:
        await driver.execute(db, _RENAME, {"key": pk, "name": "Undone"})
        row = await driver.fetchrow(db, _NAMED, {"pk": pk})
        assert row is not None and row["first_name"] == "Undone"  # seen by the transaction
        await db.rollback()
    async with runtime.sessions() as db:
        row = await driver.fetchrow(db, _NAMED, {"pk": pk})
        # Rolled back with the session: it ran in the session's transaction, not beside it.
        assert row is not None and row["first_name"] == "Ann"
        await driver.execute(db, _RENAME, {"key": pk, "name": "Kept"})
        await db.commit()
    async with runtime.sessions() as db:
        assert (await db.get(Contact, pk)).first_name == "Kept"


async def test_the_session_sees_what_the_driver_wrote_and_back(runtime: Runtime, tenant) -> None:
    pk = await _contact(runtime, tenant.id)
    async with runtime.sessions() as db:
        # The session's own statement first: the driver joins the transaction it began.
        await db.execute(update(Contact).where(Contact.pk == pk).values(last_name="Lee"))
        row = await driver.fetchrow(db, _NAMED, {"pk": pk})
        assert row is not None and row["last_name"] == "Lee"
        await driver.execute(db, _RENAME, {"key": pk, "name": "Both"})
        assert await db.scalar(select(Contact.first_name).where(Contact.pk == pk)) == "Both"
        await db.commit()


async def test_rows_come_back_typed_and_by_column_name(runtime: Runtime, tenant) -> None:
    when = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    event_id = uuid7()
    async with runtime.sessions() as db:
        db.add(
            Event(
                id=event_id,
                tenant_id=tenant.id,
                mode="test",
                type="a.one",
                contact_id=None,
                data={"nested": [1, "two", None]},
                fanout_pending=False,
                created_at=when,
            )
        )
        await db.commit()
    async with runtime.sessions() as db:
        row = await driver.fetchrow(db, _EVENT, {"id": event_id})
        assert row is not None
        assert row["data"] == {"nested": [1, "two", None]}  # JSON, decoded
        assert row["created_at"] == when and row["created_at"].tzinfo is not None
        assert row["fanout_pending"] is False
        assert await driver.fetchrow(db, _EVENT, {"id": "no-such-event"}) is None
        # A fixed IN list compiles once as equalities, and finds what IN would.
        found = {r["id"] for r in await driver.fetch(db, _OF_TYPES, {})}
        assert event_id in found


def test_an_expanding_in_is_refused_at_compile_time() -> None:
    statement = driver.Statement(select(Event.id).where(Event.type.in_(["a", "b"])))
    with pytest.raises(ValueError, match="any_of"):
        statement.sql_and_args({})


def test_values_pass_through_the_types_bind_processors() -> None:
    statement = driver.Statement(
        update(driver.table_of(Event))
        .where(driver.table_of(Event).c.id == bindparam("key"))
        .values(data=bindparam("data"), created_at=bindparam("created_at"))
    )
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    sql, args = statement.sql_and_args({"key": "e1", "data": {"a": 1}, "created_at": when})
    assert sql.count("$") == 3
    assert '{"a": 1}' in args  # JSON goes as text to the driver's codec
    assert when in args
    # The UTC type refuses a naive time here as it does through the ORM.
    with pytest.raises(ValueError, match="naive"):
        statement.sql_and_args({"key": "e1", "data": {}, "created_at": datetime(2026, 1, 1)})


async def test_load_attaches_an_object_the_session_then_writes(runtime: Runtime, tenant) -> None:
    pk = await _contact(runtime, tenant.id)
    async with runtime.sessions() as db:
        contact = await driver.load(db, Contact, _NAMED, {"pk": pk})
        assert contact is not None and contact in db
        assert not db.is_modified(contact)  # as if loaded: nothing pending
        assert driver.held(db, Contact, pk) is contact
        again = await driver.load(db, Contact, _NAMED, {"pk": pk})
        assert again is contact  # one object per row in a session
        contact.last_name = "Changed"
        await db.commit()  # the unit of work writes the change it tracked
    async with runtime.sessions() as db:
        assert (await db.get(Contact, pk)).last_name == "Changed"


async def test_refresh_replaces_what_the_session_held(runtime: Runtime, tenant) -> None:
    pk = await _contact(runtime, tenant.id)
    async with runtime.sessions() as db:
        held = await driver.load(db, Contact, _NAMED, {"pk": pk})
        assert held is not None
        await driver.execute(db, _RENAME, {"key": pk, "name": "Fresh"})
        stale = await driver.load(db, Contact, _NAMED, {"pk": pk})
        assert stale is held and held.first_name == "Ann"  # not refreshed: as the ORM does
        fresh = await driver.load(db, Contact, _LOCKED, {"pk": pk}, refresh=True)
        assert fresh is held and held.first_name == "Fresh"
        driver.refreshed(db, Contact, [pk], last_name="Told")
        assert held.last_name == "Told" and not db.is_modified(held)
        await db.rollback()


async def test_among_finds_rows_for_any_count_of_values(runtime: Runtime, tenant) -> None:
    pks = [await _contact(runtime, tenant.id, name) for name in ("Ann", "Bea", "Cy")]
    among = driver.Among(Contact, Contact.pk, Contact.tenant_id == bindparam("tenant"))
    async with runtime.sessions() as db:
        for count in (1, 3, 2):
            statement, values = among.bound(pks[:count])
            rows = await driver.fetch(db, statement, {**values, "tenant": tenant.id})
            assert sorted(r["pk"] for r in rows) == sorted(pks[:count])


async def test_a_broken_unique_key_is_an_integrity_error(runtime: Runtime, tenant) -> None:
    pk = await _contact(runtime, tenant.id)
    other = await _contact(runtime, tenant.id, "Other")
    async with runtime.sessions() as db:
        taken = await db.scalar(select(Contact.code).where(Contact.pk == pk))
        clash = driver.Statement(
            update(driver.table_of(Contact))
            .where(driver.table_of(Contact).c.pk == bindparam("key"))
            .values(code=bindparam("taken"))
        )
        with pytest.raises(IntegrityError):
            await driver.execute(db, clash, {"key": other, "taken": taken})
        await db.rollback()


async def test_a_database_error_keeps_its_sqlstate(runtime: Runtime, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("statement timeouts are PostgreSQL's")
    sleep = driver.Statement(select(func.pg_sleep(bindparam("seconds"))))
    async with runtime.sessions() as db:
        connection = await driver.connection(db)
        await connection.execute("SET LOCAL statement_timeout = 10")
        with pytest.raises(DBAPIError) as raised:
            await driver.fetch(db, sleep, {"seconds": 1})
        assert raised.value.orig.sqlstate == "57014"  # what the API answers 503 for
        await db.rollback()


async def test_a_connection_cut_under_a_statement_is_503(runtime: Runtime, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("a server-side cut is PostgreSQL's")
    async with runtime.sessions() as db:
        connection = await driver.connection(db)
        backend_pid = await connection.fetchval("SELECT pg_backend_pid()")
        async with runtime.sessions() as killer:
            await killer.execute(select(Contact.pk).limit(1))
            killer_connection = await driver.connection(killer)
            await killer_connection.execute("SELECT pg_terminate_backend($1)", backend_pid)
            await killer.rollback()
        await asyncio.sleep(0.05)
        with pytest.raises(ServiceUnavailable):
            await driver.fetchrow(db, _NAMED, {"pk": 1})
    # The pool gave the dead connection up: the next session works.
    async with runtime.sessions() as db:
        assert await driver.fetch(db, _NAMED, {"pk": -1}) == []


async def test_identity_rows_round_trip_through_adopt(runtime: Runtime, tenant) -> None:
    pk = await _contact(runtime, tenant.id)
    now = runtime.clock.now()
    identity_id = uuid7()
    async with runtime.sessions() as db:
        db.add(
            Identity(
                id=identity_id,
                tenant_id=tenant.id,
                mode="test",
                contact_pk=pk,
                provider="EMAIL",
                identifier=f"{identity_id}@example.com",
                display=f"{identity_id}@example.com",
                verified_at=now,
                created_at=now - timedelta(days=1),
            )
        )
        await db.commit()
    statement = driver.rows_of(Identity, Identity.id == bindparam("id"))
    async with runtime.sessions() as db:
        identity = await driver.load(db, Identity, statement, {"id": identity_id})
        assert identity is not None
        assert identity.verified_at == now and identity.failed_attempts == 0
        assert identity.origin == "BACK_OFFICE"
