"""The rules of the contact record shared by both surfaces: create, find, change, erase, audit.

Surfaces validate the wire format; this module receives plain field values that are already
normalised (countries alpha-3, emails checked) and keeps the derived columns (search forms,
consent history, audit) consistent with them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.contacts.errors import (
    CompanyNameRequired,
    ContactCodeAlreadyExists,
    ContactIdAlreadyExists,
    ContactNotFound,
)
from crm.contacts.models import AuditEvent, ConsentEvent, Contact, ContactPhone
from crm.identities.models import Identity, OtpChallenge, Session
from crm.ids import short_code, uuid7
from crm.messaging.models import OutboxMessage

CONSENT_FLAGS = ("service_acceptance", "email_opt_out", "sms_opt_out")
# Plain columns a surface may set directly (everything else has its own handling).
SIMPLE_FIELDS = (
    "title",
    "first_name",
    "middle_name",
    "last_name",
    "company_name",
    "email_address",
    "language_code",
    "country_of_agreement",
    "gender",
    "birth_year",
    "birth_month",
    "birth_day",
    "addresses",
    "custom_fields",
    "tags",
    "referral_code",
)
_NORMALISED = {
    "first_name": "first_name_norm",
    "last_name": "last_name_norm",
    "company_name": "company_name_norm",
}
_CODE_ATTEMPTS = 5


def search_form(value: str | None) -> str | None:
    """Case- and accent-insensitive form used by indexed prefix search ("Zoë" -> "zoe")."""
    if value is None:
        return None
    decomposed = unicodedata.normalize("NFKD", value.strip())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold()


async def create(
    session: AsyncSession,
    clock: Clock,
    *,
    tenant_id: str,
    mode: str,
    fields: Mapping[str, Any],
    source: str,
    actor: str,
    contact_id: str | None = None,
    code: str | None = None,
    contact_type: str = "PERSON",
) -> Contact:
    """Insert a contact; 409 on a taken id or code (erased contacts keep theirs as tombstones)."""
    if contact_type == "COMPANY" and not fields.get("company_name"):
        raise CompanyNameRequired()
    now = clock.now()
    if contact_id is not None and await _exists(session, tenant_id, mode, Contact.id == contact_id):
        raise ContactIdAlreadyExists()
    if code is not None and await _exists(session, tenant_id, mode, Contact.code == code):
        raise ContactCodeAlreadyExists()
    for attempt in range(_CODE_ATTEMPTS):
        contact = Contact(
            tenant_id=tenant_id,
            mode=mode,
            id=contact_id or uuid7(),
            code=code or short_code(),
            contact_type=contact_type,
            created_at=now,
            updated_at=now,
            addresses=[],
            custom_fields=[],
            tags=[],
            service_acceptance=False,
            email_opt_out=False,
            sms_opt_out=False,
        )
        _assign(contact, fields)
        try:
            async with session.begin_nested():
                session.add(contact)
        except IntegrityError as exc:
            # Lost a race on the caller's id or code, or (rarely) a generated code collided.
            if contact_id is not None and await _exists(
                session, tenant_id, mode, Contact.id == contact_id
            ):
                raise ContactIdAlreadyExists() from exc
            if code is not None or attempt == _CODE_ATTEMPTS - 1:
                raise ContactCodeAlreadyExists() from exc
            continue
        break
    changed = [f for f in CONSENT_FLAGS if f in fields]
    _record_consent(session, contact, {f: bool(fields[f]) for f in changed}, source, now)
    record_audit(
        session,
        clock,
        contact,
        "CREATED",
        actor,
        sorted(k for k in fields if fields[k] is not None),
    )
    return contact


async def _exists(session: AsyncSession, tenant_id: str, mode: str, condition: Any) -> bool:
    found = await session.scalar(
        select(Contact.pk)
        .where(Contact.tenant_id == tenant_id, Contact.mode == mode, condition)
        .limit(1)
    )
    return found is not None


def _assign(contact: Contact, fields: Mapping[str, Any]) -> None:
    for name in (*SIMPLE_FIELDS, *CONSENT_FLAGS):
        if name in fields:
            value = fields[name]
            if name in ("addresses", "custom_fields", "tags") and value is None:
                value = []
            if name in CONSENT_FLAGS:
                value = bool(value)
            setattr(contact, name, value)
            if name in _NORMALISED:
                setattr(contact, _NORMALISED[name], search_form(value))
            if name == "email_address":
                contact.email_canonical = value.casefold() if value else None


async def get_by_ref(session: AsyncSession, tenant_id: str, mode: str, ref: str) -> Contact:
    """A live contact by id, else by code; erased contacts and other tenants' are 404."""
    rows = await session.scalars(
        select(Contact).where(
            Contact.tenant_id == tenant_id,
            Contact.mode == mode,
            Contact.erased_at.is_(None),
            or_(Contact.id == ref, Contact.code == ref),
        )
    )
    found = list(rows)
    if not found:
        raise ContactNotFound()
    # An id match wins over a code match (a code may look like another contact's id).
    return next((c for c in found if c.id == ref), found[0])


async def get_by_pk(session: AsyncSession, pk: int) -> Contact:
    contact = await session.get(Contact, pk)
    if contact is None or contact.erased_at is not None:
        raise ContactNotFound()
    return contact


async def update_fields(
    session: AsyncSession,
    clock: Clock,
    contact: Contact,
    changes: Mapping[str, Any],
    *,
    source: str,
    actor: str,
) -> list[str]:
    """Apply a partial update (absent = unchanged, None = cleared); return the changed field names."""
    changed = [name for name, value in changes.items() if getattr(contact, name, object()) != value]
    if not changed:
        return []
    now = clock.now()
    consent = {f: bool(changes[f]) for f in CONSENT_FLAGS if f in changed}
    merged = dict(changes)
    if (
        contact.contact_type == "COMPANY"
        and "company_name" in merged
        and not merged["company_name"]
    ):
        raise CompanyNameRequired()
    _assign(contact, {k: merged[k] for k in changed})
    contact.updated_at = now
    _record_consent(session, contact, consent, source, now)
    record_audit(session, clock, contact, "UPDATED", actor, sorted(changed))
    return sorted(changed)


def _record_consent(
    session: AsyncSession, contact: Contact, values: Mapping[str, bool], source: str, now: Any
) -> None:
    for flag, value in values.items():
        session.add(
            ConsentEvent(
                id=uuid7(),
                contact_pk=contact.pk,
                flag=flag,
                value=value,
                source=source,
                changed_at=now,
            )
        )


def record_audit(
    session: AsyncSession,
    clock: Clock,
    contact: Contact,
    action: str,
    actor: str,
    fields: Iterable[str],
) -> None:
    """Who did what to which fields of a contact (names only: values of secrets never land here)."""
    session.add(
        AuditEvent(
            id=uuid7(),
            tenant_id=contact.tenant_id,
            mode=contact.mode,
            contact_id=contact.id,
            action=action,
            actor=actor[:80],
            fields=list(fields),
            created_at=clock.now(),
        )
    )


async def erase(session: AsyncSession, clock: Clock, contact: Contact, *, actor: str) -> None:
    """Right to erasure: clear personal data, identities, sessions and unsent messages.

    The row stays as a tombstone (id, code, erased_at) so the id is never given to someone else.
    """
    now = clock.now()
    await session.execute(delete(Session).where(Session.contact_pk == contact.pk))
    identity_ids = select(Identity.id).where(Identity.contact_pk == contact.pk)
    await session.execute(delete(OtpChallenge).where(OtpChallenge.identity_id.in_(identity_ids)))
    await session.execute(delete(Identity).where(Identity.contact_pk == contact.pk))
    await session.execute(delete(ContactPhone).where(ContactPhone.contact_pk == contact.pk))
    await session.execute(delete(ConsentEvent).where(ConsentEvent.contact_pk == contact.pk))
    await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.contact_pk == contact.pk, OutboxMessage.status.in_(("queued", "sending"))
        )
        .values(status="cancelled", last_error="contact erased")
    )
    # Delivered messages keep their delivery record but lose the personal content.
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.contact_pk == contact.pk)
        .values(
            recipient="[erased]",
            subject=None,
            body_text="[erased]",
            body_html=None,
            contact_pk=None,
        )
    )
    for name in SIMPLE_FIELDS:
        setattr(contact, name, [] if name in ("addresses", "custom_fields", "tags") else None)
    for norm in _NORMALISED.values():
        setattr(contact, norm, None)
    contact.email_canonical = None
    for flag in CONSENT_FLAGS:
        setattr(contact, flag, False)
    contact.erased_at = now
    contact.updated_at = now
    record_audit(session, clock, contact, "ERASED", actor, [])
