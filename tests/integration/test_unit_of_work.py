"""crm.unit_of_work: a session's new and changed rows written as SQLAlchemy's flush would.

On PostgreSQL plain rows go as one statement; the session must end up exactly as after
`Session.flush()` (objects persistent, nothing pending), the rows exactly as the ORM writes them
(Python-side defaults applied), and anything not plain must take the ORM's own flush.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from crm import unit_of_work
from crm.contacts import service as contacts
from crm.contacts.contact_fields import ContactFields
from crm.contacts.models import AuditEvent, Contact, ContactPhone
from crm.events.models import Event
from crm.identities.models import Identity, OtpChallenge
from crm.ids import uuid7
from crm.runtime import Runtime


def _contact_row(tenant_id: str, runtime: Runtime, name: str = "Ann") -> Contact:
    return contacts.build_contact(
        tenant_id=tenant_id,
        mode="test",
        fields=contacts.prepare_new(
            mode="test",
            fields=ContactFields(first_name=name),
            contact_id=None,
            code=None,
            contact_type="PERSON",
        ),
        contact_id=None,
        code=None,
        contact_type="PERSON",
        now=runtime.clock.now(),
    )


def _identity(contact: Contact, now, **values) -> Identity:  # type: ignore[no-untyped-def]
    identity_id = uuid7()
    return Identity(
        id=identity_id,
        tenant_id=contact.tenant_id,
        mode=contact.mode,
        contact_pk=contact.pk,
        provider="EMAIL",
        identifier=f"{identity_id}@example.com",
        display=f"{identity_id}@example.com",
        created_at=now,
        **values,
    )


async def _stored(
    runtime: Runtime, tenant_id: str, identities: int
) -> tuple[Contact, list[Identity]]:
    """A committed contact with `identities` identities."""
    now = runtime.clock.now()
    async with runtime.sessions() as db:
        contact = _contact_row(tenant_id, runtime)
        await unit_of_work.add_unless_taken(db, contact)
        rows = [_identity(contact, now) for _ in range(identities)]
        db.add_all(rows)
        await db.commit()
    return contact, rows


async def test_new_rows_of_many_tables_are_written_and_left_clean(runtime: Runtime, tenant) -> None:
    now = runtime.clock.now()
    async with runtime.sessions() as db:
        contact = _contact_row(tenant.id, runtime)
        assert await unit_of_work.add_unless_taken(db, contact)
        assert contact.pk is not None and contact in db and not db.new
        # Children before their parent in the order added: the foreign keys still hold.
        identity = _identity(contact, now)
        challenge = OtpChallenge(
            id=uuid7(),
            tenant_id=tenant.id,
            mode="test",
            application_id=None,
            identity_id=identity.id,
            purpose="REGISTER",
            channel="EMAIL",
            code_hmac="0" * 64,
            created_at=now,
            expires_at=now + timedelta(minutes=5),
        )
        db.add(challenge)
        db.add(identity)
        db.add(
            ContactPhone(
                id=uuid7(),
                contact_pk=contact.pk,
                tenant_id=tenant.id,
                mode="test",
                country_code="CY",
                number="99123456",
                e164="+35799123456",
            )
        )
        events = [
            Event(
                id=uuid7(),
                tenant_id=tenant.id,
                mode="test",
                type=f"t.{n}",
                contact_id=contact.id,
                data={"n": n},
                created_at=now,
            )
            for n in range(3)
        ]
        db.add_all(events)
        await unit_of_work.flush(db)
        assert not db.new and not db.dirty
        for obj in (identity, challenge, *events):
            assert obj in db and not db.is_modified(obj)
        # Python-side defaults applied, on the objects as on the rows.
        assert identity.failed_attempts == 0 and challenge.attempts == 0
        assert identity.origin == "BACK_OFFICE"
        assert all(event.fanout_pending is True for event in events)
        await db.commit()
    async with runtime.sessions() as db:
        stored = await db.get(Identity, identity.id)
        assert stored is not None and stored.failed_attempts == 0
        assert stored.origin == "BACK_OFFICE" and stored.contact_pk == contact.pk
        phone = await db.scalar(select(ContactPhone).where(ContactPhone.contact_pk == contact.pk))
        assert phone is not None and phone.phone_type == "MOBILE" and phone.is_primary is False
        data = await db.scalars(
            select(Event.data).where(Event.contact_id == contact.id).order_by(Event.type)
        )
        assert list(data) == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_changed_columns_only_are_written(runtime: Runtime, tenant, backend: str) -> None:
    now = runtime.clock.now()
    _, (first, second) = await _stored(runtime, tenant.id, 2)
    async with runtime.sessions() as db:
        one = await db.get(Identity, first.id)
        two = await db.get(Identity, second.id)
        assert one is not None and two is not None
        one.verified_at = now
        one.failed_attempts = 3
        two.locked_at = now
        if backend == "postgresql":
            # Another writer changes a column this session does not touch (on SQLite the
            # session's write lock keeps it out until the commit).
            async with runtime.sessions() as other:
                row = await other.get(Identity, first.id)
                assert row is not None
                row.display = "changed elsewhere"
                await other.commit()
        await unit_of_work.commit(db)
    async with runtime.sessions() as db:
        one = await db.get(Identity, first.id)
        two = await db.get(Identity, second.id)
        assert one is not None and two is not None
        assert one.verified_at == now and one.failed_attempts == 3
        if backend == "postgresql":
            assert one.display == "changed elsewhere"  # not overwritten with a stale value
        assert two.locked_at == now and two.verified_at is None


async def test_a_taken_key_leaves_the_transaction_usable(runtime: Runtime, tenant) -> None:
    async with runtime.sessions() as db:
        first = _contact_row(tenant.id, runtime)
        assert await unit_of_work.add_unless_taken(db, first)
        clash = _contact_row(tenant.id, runtime, "Bea")
        clash.code = first.code
        clash.code_norm = first.code_norm
        assert not await unit_of_work.add_unless_taken(db, clash)
        assert clash not in db and clash.pk is None
        # The transaction goes on: no aborted state, no savepoint needed by the caller.
        third = _contact_row(tenant.id, runtime, "Cy")
        assert await unit_of_work.add_unless_taken(db, third)
        await db.commit()
    async with runtime.sessions() as db:
        names = await db.scalars(
            select(Contact.first_name).where(Contact.tenant_id == tenant.id).order_by(Contact.pk)
        )
        assert list(names) == ["Ann", "Cy"]


async def test_a_broken_key_in_a_flush_is_an_integrity_error(runtime: Runtime, tenant) -> None:
    now = runtime.clock.now()
    contact, (twin,) = await _stored(runtime, tenant.id, 1)
    async with runtime.sessions() as db:
        copy = _identity(contact, now)
        copy.id = twin.id  # same primary key
        db.add(copy)
        with pytest.raises(IntegrityError):
            await unit_of_work.flush(db)
        await db.rollback()
    async with runtime.sessions() as db:
        count = await db.scalar(select(func.count()).where(Identity.id == twin.id))
        assert count == 1  # nothing half-written


async def test_deletions_take_the_orms_flush(runtime: Runtime, tenant) -> None:
    now = runtime.clock.now()
    contact, (gone, kept) = await _stored(runtime, tenant.id, 2)
    async with runtime.sessions() as db:
        row = await db.get(Identity, gone.id)
        await db.delete(row)
        db.add(
            AuditEvent(
                id=uuid7(),
                tenant_id=tenant.id,
                mode="test",
                contact_id=contact.id,
                action="TEST",
                actor="test",
                fields=["identities"],
                created_at=now,
            )
        )
        await unit_of_work.commit(db)
    async with runtime.sessions() as db:
        assert await db.get(Identity, gone.id) is None
        assert await db.get(Identity, kept.id) is not None
        actions = await db.scalars(
            select(AuditEvent.action).where(AuditEvent.contact_id == contact.id)
        )
        assert "TEST" in list(actions)


async def test_a_rollback_takes_written_objects_out_as_after_the_orms_flush(
    runtime: Runtime, tenant
) -> None:
    now = runtime.clock.now()
    contact, _ = await _stored(runtime, tenant.id, 0)
    async with runtime.sessions() as db:
        identity = _identity(contact, now)
        db.add(identity)
        await unit_of_work.flush(db)
        assert identity in db
        await db.rollback()
        assert identity not in db  # new in this transaction: gone with it, as the ORM does
        assert await db.get(Identity, identity.id) is None


async def test_a_large_flush_takes_the_orms_path_and_writes_every_row(
    runtime: Runtime, tenant
) -> None:
    now = runtime.clock.now()
    contact, _ = await _stored(runtime, tenant.id, 0)
    many = unit_of_work._MAX_ROWS + 5
    async with runtime.sessions() as db:
        db.add_all(
            Event(
                id=uuid7(),
                tenant_id=tenant.id,
                mode="test",
                type=f"bulk.{n}",
                contact_id=contact.id,
                data={},
                created_at=now,
            )
            for n in range(many)
        )
        assert not unit_of_work._plain(db)  # too many for one statement
        await unit_of_work.commit(db)
    async with runtime.sessions() as db:
        count = await db.scalar(select(func.count()).where(Event.contact_id == contact.id))
        assert count == many
