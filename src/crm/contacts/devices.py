"""A contact's push-notification devices: register, list, remove, and forget them on erasure.

A registration token (FCM, APNs, web push) names one app install. It is unique per tenant and
mode: when a second contact signs in on the same install and registers the token, it moves to
them, because the install now belongs to whoever is signed in and a push meant for the first
contact must not reach it. A contact keeps at most MAX_DEVICES; registering one more forgets
the one registered longest ago (old installs never say goodbye, a new phone must still work).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.contacts.audit import record_audit
from crm.contacts.errors import DeviceNotFound
from crm.contacts.models import Contact, ContactDevice
from crm.errors import ConcurrentChange
from crm.ids import uuid7

MAX_DEVICES = 20
DETAILS = ("platform", "mac_address", "serial_number", "electronic_id", "application_id")


async def list_(session: AsyncSession, contact: Contact) -> list[ContactDevice]:
    """The contact's devices, the most recently registered first."""
    rows = await session.scalars(
        select(ContactDevice)
        .where(ContactDevice.contact_pk == contact.pk)
        .order_by(ContactDevice.registered_at.desc(), ContactDevice.id.desc())
    )
    return list(rows)


async def _by_token(session: AsyncSession, contact: Contact, token: str) -> ContactDevice | None:
    return await session.scalar(
        select(ContactDevice)
        .where(
            ContactDevice.tenant_id == contact.tenant_id,
            ContactDevice.mode == contact.mode,
            ContactDevice.registration_token == token,
        )
        .with_for_update()
    )


async def register(
    session: AsyncSession,
    clock: Clock,
    contact: Contact,
    *,
    token: str,
    details: Mapping[str, Any],
    actor: str,
) -> ContactDevice:
    """Register `token` to the contact (again: same row, new details); return the device."""
    now = clock.now()
    device = await _by_token(session, contact, token)
    if device is None:
        device = ContactDevice(
            id=uuid7(),
            contact_pk=contact.pk,
            tenant_id=contact.tenant_id,
            mode=contact.mode,
            registration_token=token,
            registered_at=now,
            **{name: details.get(name) for name in DETAILS},
        )
        try:
            async with session.begin_nested():
                session.add(device)
        except IntegrityError:
            # Registered by a concurrent request between the look-up and the insert.
            raise ConcurrentChange() from None
    else:
        previous_pk = device.contact_pk
        device.contact_pk = contact.pk
        device.registered_at = now
        for name in DETAILS:
            setattr(device, name, details.get(name))
        if previous_pk != contact.pk:
            previous = await session.get(Contact, previous_pk)
            if previous is not None:
                record_audit(session, clock, previous, "DEVICE_MOVED_AWAY", actor, ["devices"])
    await session.flush()
    await _keep_newest(session, contact)
    record_audit(session, clock, contact, "DEVICE_REGISTERED", actor, ["devices"])
    return device


async def _keep_newest(session: AsyncSession, contact: Contact) -> None:
    stale = (await list_(session, contact))[MAX_DEVICES:]
    if stale:
        await session.execute(
            delete(ContactDevice).where(ContactDevice.id.in_([d.id for d in stale]))
        )


async def remove(
    session: AsyncSession, clock: Clock, contact: Contact, *, token: str, actor: str
) -> None:
    """Remove the contact's device with `token`; another contact's token is unknown here."""
    result = await session.execute(
        delete(ContactDevice).where(
            ContactDevice.contact_pk == contact.pk, ContactDevice.registration_token == token
        )
    )
    if not getattr(result, "rowcount", 0):
        raise DeviceNotFound()
    record_audit(session, clock, contact, "DEVICE_REMOVED", actor, ["devices"])


async def forget(session: AsyncSession, contact: Contact) -> None:
    """Erasure: the contact's devices go (their tokens would still reach the person)."""
    await session.execute(delete(ContactDevice).where(ContactDevice.contact_pk == contact.pk))
