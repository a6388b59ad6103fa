"""The derived rows of a contact kept in their own tables: its phones and consent history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.contacts.contact_fields import CONSENT_FLAGS, UNSET, ContactFields, Phone
from crm.contacts.models import ConsentEvent, Contact, ContactPhone
from crm.events.service import consent_changed
from crm.ids import uuid7

# Re-exported for the contacts service's callers.
__all__ = ["CONSENT_FLAGS"]


def _add_phones(session: AsyncSession, contact: Contact, phones: Sequence[Phone]) -> None:
    for row in phone_rows(contact, phones):
        session.add(ContactPhone(**row))


def phone_rows(contact: Contact, phones: Sequence[Phone]) -> list[dict[str, Any]]:
    """The `contact_phones` rows of a contact's normalised phones (`contact.pk` set by then)."""
    return [
        {
            "id": uuid7(),
            "contact_pk": contact.pk,
            "tenant_id": contact.tenant_id,
            "mode": contact.mode,
            "phone_type": phone["phone_type"],
            "country_code": phone["country_code"],
            "number": phone["number"],
            "e164": phone["number"],
            "is_primary": phone["is_primary"],
        }
        for phone in phones
    ]


async def phones_of(
    session: AsyncSession, contact_pks: Sequence[int]
) -> dict[int, list[ContactPhone]]:
    """The phones of each contact, the primary first then in the order they were added."""
    result: dict[int, list[ContactPhone]] = {pk: [] for pk in contact_pks}
    if not contact_pks:
        return result
    rows = await session.scalars(
        select(ContactPhone)
        .where(ContactPhone.contact_pk.in_(contact_pks))
        .order_by(ContactPhone.contact_pk, ContactPhone.is_primary.desc(), ContactPhone.id)
    )
    for phone in rows:
        result[phone.contact_pk].append(phone)
    return result


def _phone_key(phone: Mapping[str, Any]) -> tuple[Any, ...]:
    return (phone["phone_type"], phone["country_code"], phone["number"], phone["is_primary"])


def _address_key(address: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in address.items() if k != "id" and v is not None}


def _record_consent(
    session: AsyncSession, contact: Contact, values: Mapping[str, bool], source: str, now: Any
) -> None:
    for row in consent_rows(contact, values, source, now):
        session.add(ConsentEvent(**row))
    consent_changed(session, now, contact, values, source)


def consent_rows(
    contact: Contact, values: Mapping[str, bool], source: str, now: Any
) -> list[dict[str, Any]]:
    """The `consent_events` rows recording each flag's new value."""
    return [
        {
            "id": uuid7(),
            "contact_pk": contact.pk,
            "flag": flag,
            "value": value,
            "source": source,
            "changed_at": now,
        }
        for flag, value in values.items()
    ]


async def consent_history(session: AsyncSession, contact: Contact) -> list[ConsentEvent]:
    """Every consent change of a contact, oldest first."""
    rows = await session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.contact_pk == contact.pk)
        .order_by(ConsentEvent.changed_at, ConsentEvent.id)
    )
    return list(rows)


def created_consent(fields: ContactFields) -> dict[str, bool]:
    """The consent flags a new contact's fields set, each a first entry of its history."""
    return {f: bool(value) for f in CONSENT_FLAGS if (value := getattr(fields, f)) is not UNSET}


def created_audit_fields(fields: ContactFields) -> list[str]:
    """The field names the CREATED audit entry lists: those given a value."""
    return sorted(name for name, value in fields.given() if value not in (None, [], ""))
