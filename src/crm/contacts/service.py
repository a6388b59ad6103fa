"""The rules of the contact record shared by both surfaces: create, find, change, erase, audit.

Surfaces validate the wire shape (types, lengths, enums); this module normalises the values
whose meaning needs the domain (phones to E.164, countries to alpha-3, emails to their matching
key), enforces the record's invariants (one primary phone and address, a COMPANY's name, ids and
codes unique per tenant and mode) and keeps the derived columns (search forms, phone rows,
consent history, audit) consistent with them.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Any

from sqlalchemy import bindparam, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm import driver, unit_of_work
from crm.clock import Clock

# The audit and derived-row helpers live in their own modules; callers keep importing them here.
from crm.contacts import custom_fields, devices, documents, pictures
from crm.contacts.audit import AuditPage as AuditPage
from crm.contacts.audit import audit_row as audit_row
from crm.contacts.audit import count_audit as count_audit
from crm.contacts.audit import list_audit as list_audit
from crm.contacts.audit import record_audit as record_audit
from crm.contacts.contact_fields import (
    COLUMN_FIELDS,
    LIST_FIELDS,
    SEARCH_FORMS,
    UNSET,
    Unset,
    or_none,
)
from crm.contacts.contact_fields import CONSENT_FLAGS as CONSENT_FLAGS
from crm.contacts.contact_fields import PHONES as PHONES
from crm.contacts.contact_fields import ContactFields as ContactFields
from crm.contacts.documents import contact_by_number as contact_by_number
from crm.contacts.errors import (
    CompanyNameRequired,
    ContactCodeAlreadyExists,
    ContactCodeImmutable,
    ContactIdAlreadyExists,
    ContactNotFound,
    ContactTypeImmutable,
    InvalidContactCode,
    InvalidContactId,
    InvalidDateOfBirth,
)
from crm.contacts.models import ConsentEvent, Contact, ContactPhone
from crm.contacts.normalise import _email
from crm.contacts.normalise import normalise_fields as normalise_fields
from crm.contacts.rows import _add_phones, _address_key, _phone_key, _record_consent
from crm.contacts.rows import consent_history as consent_history
from crm.contacts.rows import consent_rows as consent_rows
from crm.contacts.rows import created_audit_fields as created_audit_fields
from crm.contacts.rows import created_consent as created_consent
from crm.contacts.rows import phone_rows as phone_rows
from crm.contacts.rows import phones_of as phones_of
from crm.errors import AppError
from crm.ids import short_code, uuid7

# The field vocabulary's lists, under the names the import's row builder reads.
SIMPLE_FIELDS = COLUMN_FIELDS
_LIST_FIELDS = LIST_FIELDS
_NORMALISED = SEARCH_FORMS
_CODE_ATTEMPTS = 5
# Ids go into URL paths and other systems' foreign keys: a conservative alphabet keeps them
# unambiguous there (no slashes, spaces, dots that proxies normalise, or look-alike Unicode).
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,36}")
_CODE_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,36}")
# Path segments the router uses under /contacts; an id or code equal to one would be unreachable.
RESERVED_REFS = frozenset({"verify"})
CONTACT_TYPES = ("PERSON", "COMPANY")
MIN_BIRTH_YEAR = 1900


def search_form(value: str | None) -> str | None:
    """Case- and accent-insensitive form used by indexed prefix search ("Zoë" -> "zoe")."""
    if value is None:
        return None
    decomposed = unicodedata.normalize("NFKD", value.strip())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold()


def check_contact_id(value: str) -> str:
    if not isinstance(value, str) or not _ID_PATTERN.fullmatch(value) or value in RESERVED_REFS:
        raise InvalidContactId(details=[{"field": "id", "message": InvalidContactId.message}])
    return value


def check_contact_code(value: str) -> str:
    if not isinstance(value, str) or not _CODE_PATTERN.fullmatch(value) or value in RESERVED_REFS:
        raise InvalidContactCode(details=[{"field": "code", "message": InvalidContactCode.message}])
    return value


def _check_birth_date(contact: Contact) -> None:
    parts = (contact.birth_year, contact.birth_month, contact.birth_day)
    if all(p is None for p in parts):
        return
    if any(p is None for p in parts):
        raise InvalidDateOfBirth(
            details=[{"field": "demographics.date_of_birth", "message": "year, month and day"}]
        )
    try:
        born = dt.date(*parts)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidDateOfBirth() from None
    if born.year < MIN_BIRTH_YEAR or born > dt.datetime.now(dt.UTC).date():
        raise InvalidDateOfBirth()


async def create(
    session: AsyncSession,
    clock: Clock,
    *,
    tenant_id: str,
    mode: str,
    fields: ContactFields,
    source: str,
    actor: str,
    contact_id: str | None = None,
    code: str | None = None,
    contact_type: str = "PERSON",
) -> Contact:
    """Insert a contact; 409 on a taken id or code (erased contacts keep theirs as tombstones)."""
    fields = prepare_new(
        mode=mode, fields=fields, contact_id=contact_id, code=code, contact_type=contact_type
    )
    fields = await custom_fields.checked(session, tenant_id, fields)
    now = clock.now()
    if contact_id is not None and await _exists(session, tenant_id, mode, Contact.id == contact_id):
        raise ContactIdAlreadyExists()
    if code is not None and await _exists(session, tenant_id, mode, Contact.code == code):
        raise ContactCodeAlreadyExists()
    await documents.check_unique(
        session, tenant_id=tenant_id, mode=mode, fields=fields, contact_pk=None
    )
    for attempt in range(_CODE_ATTEMPTS):
        contact = build_contact(
            tenant_id=tenant_id,
            mode=mode,
            fields=fields,
            contact_id=contact_id,
            code=code,
            contact_type=contact_type,
            now=now,
        )
        if not await unit_of_work.add_unless_taken(session, contact):
            # Lost a race on the caller's id or code, or (rarely) a generated code collided.
            if contact_id is not None and await _exists(
                session, tenant_id, mode, Contact.id == contact_id
            ):
                raise ContactIdAlreadyExists()
            if code is not None or attempt == _CODE_ATTEMPTS - 1:
                raise ContactCodeAlreadyExists()
            continue
        break
    for row in phone_rows(contact, or_none(fields.phones) or []):
        session.add(ContactPhone(**row))
    if contact.loyalty_identifiers:
        await documents.store_loyalty(session, contact)
    for row in consent_rows(contact, created_consent(fields), source, now):
        session.add(ConsentEvent(**row))
    record_audit(session, clock, contact, "CREATED", actor, created_audit_fields(fields))
    return contact


def prepare_new(
    *,
    mode: str,
    fields: ContactFields,
    contact_id: str | None,
    code: str | None,
    contact_type: str,
) -> ContactFields:
    """A new contact's fields checked and normalised (the rules `create` and bulk import share)."""
    if contact_id is not None:
        check_contact_id(contact_id)
    if code is not None:
        check_contact_code(code)
    if contact_type not in CONTACT_TYPES:
        raise AppError("contact_type must be PERSON or COMPANY.")
    fields = normalise_fields(fields, test_mode=mode == "test")
    if contact_type == "COMPANY" and not or_none(fields.company_name):
        raise CompanyNameRequired(details=[{"field": "company_name", "message": "required"}])
    return fields


def initial_values(
    *,
    tenant_id: str,
    mode: str,
    contact_id: str | None,
    code: str | None,
    contact_type: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """A new contact's columns before its fields: an id and code generated when not given, empty
    lists and no consent (the ORM builder and the import's plain rows both start here)."""
    contact_code = code or short_code()
    return {
        "tenant_id": tenant_id,
        "mode": mode,
        "id": contact_id or uuid7(),
        "code": contact_code,
        "code_norm": contact_code.casefold(),
        "contact_type": contact_type,
        "created_at": now,
        "updated_at": now,
        "addresses": [],
        "custom_fields": [],
        "tags": [],
        "sub_industries": [],
        "loyalty_identifiers": [],
        "service_acceptance": False,
        "email_opt_out": False,
        "sms_opt_out": False,
    }


def build_contact(
    *,
    tenant_id: str,
    mode: str,
    fields: ContactFields,
    contact_id: str | None,
    code: str | None,
    contact_type: str,
    now: dt.datetime,
) -> Contact:
    """The contact row for fields from `prepare_new`: an id and code generated when not given."""
    contact = Contact(
        **initial_values(
            tenant_id=tenant_id,
            mode=mode,
            contact_id=contact_id,
            code=code,
            contact_type=contact_type,
            now=now,
        )
    )
    _assign(contact, fields)
    _check_birth_date(contact)
    return contact


async def _exists(session: AsyncSession, tenant_id: str, mode: str, condition: Any) -> bool:
    found = await session.scalar(
        select(Contact.pk)
        .where(Contact.tenant_id == tenant_id, Contact.mode == mode, condition)
        .limit(1)
    )
    return found is not None


def _assign(contact: Contact, fields: ContactFields) -> None:
    for name, value in fields.given():
        if name == PHONES:
            continue  # rows of their own (phone_rows)
        if name in _LIST_FIELDS and value is None:
            value = []
        if name in CONSENT_FLAGS:
            value = bool(value)
        setattr(contact, name, value)
        if name in _NORMALISED:
            setattr(contact, _NORMALISED[name], search_form(value))
        if name == "email_address":
            contact.email_canonical = _email(value, contact.mode == "test")[1] if value else None


async def get_by_ref(session: AsyncSession, tenant_id: str, mode: str, ref: str) -> Contact:
    """A live contact by id, else by code; erased contacts and other tenants' are 404."""
    if not isinstance(ref, str) or not 0 < len(ref) <= 36:
        raise ContactNotFound()
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


_BY_PK = driver.rows_of(Contact, Contact.pk == bindparam("pk"))


async def get_by_pk(session: AsyncSession, pk: int) -> Contact:
    contact = driver.held(session, Contact, pk) or await driver.load(
        session, Contact, _BY_PK, {"pk": pk}
    )
    if contact is None or contact.erased_at is not None:
        raise ContactNotFound()
    return contact


async def update_fields(
    session: AsyncSession,
    clock: Clock,
    contact: Contact,
    changes: ContactFields,
    *,
    source: str,
    actor: str,
    code: str | Unset | None = UNSET,
    contact_type: str | Unset | None = UNSET,
) -> list[str]:
    """Apply a partial update (unset = unchanged, None = cleared); return the changed field names.

    `code` and `contact_type` may be sent only with their current values (400 otherwise).
    """
    if code is not UNSET and code != contact.code:
        raise ContactCodeImmutable(details=[{"field": "code", "message": "immutable"}])
    if contact_type is not UNSET and contact_type != contact.contact_type:
        raise ContactTypeImmutable(details=[{"field": "contact_type", "message": "immutable"}])
    changes = normalise_fields(changes, test_mode=contact.mode == "test")
    changes = await custom_fields.checked(session, contact.tenant_id, changes)
    changed: list[str] = []
    for name, value in changes.given():
        if name == PHONES:
            current = (await phones_of(session, [contact.pk]))[contact.pk]
            before = [
                _phone_key(
                    {
                        "phone_type": p.phone_type,
                        "country_code": p.country_code,
                        "number": p.e164,
                        "is_primary": p.is_primary,
                    }
                )
                for p in current
            ]
            if before != [_phone_key(p) for p in value or []]:
                changed.append(name)
        elif name == "addresses":
            before_addresses = [_address_key(a) for a in contact.addresses or []]
            if before_addresses != [_address_key(a) for a in value or []]:
                changed.append(name)
        elif name in _LIST_FIELDS:
            if (getattr(contact, name) or []) != (value or []):
                changed.append(name)
        elif getattr(contact, name) != value:
            changed.append(name)
    if not changed:
        return []
    if contact.contact_type == "COMPANY" and "company_name" in changed and not changes.company_name:
        raise CompanyNameRequired(details=[{"field": "company_name", "message": "required"}])
    changes = changes.only(changed)
    await documents.check_unique(
        session,
        tenant_id=contact.tenant_id,
        mode=contact.mode,
        fields=changes,
        contact_pk=contact.pk,
    )
    now = clock.now()
    consent = {f: bool(getattr(changes, f)) for f in CONSENT_FLAGS if f in changed}
    _assign(contact, changes)
    _check_birth_date(contact)
    if "loyalty_identifiers" in changed:
        await documents.store_loyalty(session, contact)
    if PHONES in changed:
        await session.execute(delete(ContactPhone).where(ContactPhone.contact_pk == contact.pk))
        _add_phones(session, contact, or_none(changes.phones) or [])
    contact.updated_at = now
    _record_consent(session, contact, consent, source, now)
    record_audit(session, clock, contact, "UPDATED", actor, sorted(changed))
    return sorted(changed)


async def erase_record(
    session: AsyncSession, clock: Clock, contact: Contact, *, actor: str
) -> None:
    """The contact record's own part of erasure: its personal data, phones, consent history,
    devices and picture. Erasing a contact is `crm.directory.erase.erase`, which also removes its
    identities, sessions and messages and then calls this.

    The row stays as a tombstone (id, code, erased_at) so the id is never given to someone else.
    """
    now = clock.now()
    await session.execute(delete(ContactPhone).where(ContactPhone.contact_pk == contact.pk))
    await session.execute(delete(ConsentEvent).where(ConsentEvent.contact_pk == contact.pk))
    await devices.forget(session, contact)
    await pictures.forget(session, contact)  # its file goes after the commit
    for name in SIMPLE_FIELDS:
        setattr(contact, name, [] if name in _LIST_FIELDS else None)
    await documents.store_loyalty(session, contact)  # none left: the identifiers are free
    for norm in _NORMALISED.values():
        setattr(contact, norm, None)
    contact.email_canonical = None
    for flag in CONSENT_FLAGS:
        setattr(contact, flag, False)
    contact.erased_at = now
    contact.updated_at = now
    record_audit(session, clock, contact, "ERASED", actor, [])
