"""Identifiers stored under the old matching rules are re-keyed, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from crm.contacts import service as contacts
from crm.contacts.contact_fields import ContactFields
from crm.contacts.models import Contact, ContactPhone
from crm.identities import service
from crm.identities.models import Identity
from crm.identities.rekey import rekey_identifiers
from crm.ids import uuid7
from crm.runtime import Runtime


async def _contact(session: Any, runtime: Runtime, tenant: Any, **fields: Any) -> Contact:
    return await contacts.create(
        session,
        runtime.clock,
        tenant_id=tenant.id,
        mode="live",
        fields=ContactFields(**fields),
        source="BACK_OFFICE",
        actor="test",
    )


async def _identity(session: Any, runtime: Runtime, contact: Contact, **kw: Any) -> Identity:
    return await service.add_identity(
        session, runtime.clock, runtime.secret, contact=contact, actor="bo", **kw
    )


async def test_old_keys_are_recomputed_and_conflicts_left_alone(
    runtime: Runtime, tenant: Any
) -> None:
    async with runtime.sessions() as session:
        ann = await _contact(session, runtime, tenant, first_name="Ann", email_address="x@faß.de")
        bob = await _contact(session, runtime, tenant, first_name="Bob")
        sharp = await _identity(session, runtime, ann, provider="EMAIL", email="X@faß.de")
        phone = await _identity(session, runtime, ann, provider="PHONE", phone="+35799123456")
        kept = await _identity(session, runtime, bob, provider="PHONE", phone="+525512345678")
        twin = await _identity(session, runtime, bob, provider="PHONE", phone="+35799654321")
        session.add(
            ContactPhone(
                id=uuid7(),
                contact_pk=bob.pk,
                tenant_id=tenant.id,
                mode="live",
                phone_type="MOBILE",
                country_code="CYP",
                number="099654321",
                e164="+357099654321",
                is_primary=True,
            )
        )
        await session.flush()
        # What the old rules stored: the domain case-folded, the trunk 0 and Mexico's "1" kept.
        legacy = {
            sharp.id: "x@fass.de",
            phone.id: "+357099123456",
            twin.id: "+5215512345678",  # the same handset as `kept`, stored apart
        }
        for identity_id, old in legacy.items():
            await session.execute(
                update(Identity).where(Identity.id == identity_id).values(identifier=old)
            )
        await session.execute(
            update(Contact).where(Contact.pk == ann.pk).values(email_canonical="x@fass.de")
        )
        await session.commit()

    async with runtime.engine.begin() as conn:
        first = await conn.run_sync(rekey_identifiers)
    async with runtime.engine.begin() as conn:
        second = await conn.run_sync(rekey_identifiers)

    assert first.identities >= 2 and first.conflicts >= 1 and first.contact_phones >= 1
    assert second.identities == 0 and second.contacts == 0 and second.contact_phones == 0

    async with runtime.sessions() as session:
        result = await session.execute(
            select(Identity.id, Identity.identifier).where(Identity.tenant_id == tenant.id)
        )
        keys = {row.id: row.identifier for row in result}
        assert keys[sharp.id] == "x@faß.de"
        assert keys[phone.id] == "+35799123456"
        assert keys[kept.id] == "+525512345678"
        assert keys[twin.id] == "+5215512345678"  # left for the back office to remove
        assert (
            await session.scalar(select(Contact.email_canonical).where(Contact.pk == ann.pk))
            == "x@faß.de"
        )
        assert (
            await session.scalar(select(ContactPhone.e164).where(ContactPhone.contact_pk == bob.pk))
            == "+35799654321"
        )
