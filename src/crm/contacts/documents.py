"""The rules on a contact's documents and loyalty identifiers (their wire shapes are
crm.documents'): passport, id and statutory numbers and loyalty identifiers are unique per
tenant and mode, so a code request may name one to reach its contact. They are kept in a
matching form, without the spaces, dashes, dots and slashes people type, in upper case.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.contacts.contact_fields import UNSET, ContactFields, or_none
from crm.contacts.errors import DocumentInUse, InvalidDocumentNumber, InvalidNameDay
from crm.contacts.models import Contact, ContactLoyaltyIdentifier
from crm.documents import (
    COUNTRIES,
    DOCUMENT_FIELDS,
    LIST_FIELDS,
    MAX_LOYALTY_IDENTIFIERS,
    UNIQUE_NUMBERS,
    folded_number,
)
from crm.errors import AppError
from crm.ids import uuid7

# Re-exported for the contacts service's callers.
__all__ = ["DOCUMENT_FIELDS", "LIST_FIELDS", "contact_by_number", "matching_form"]


def matching_form(value: str) -> str:
    """A document or loyalty number as kept and matched: "ab 123-456" -> "AB123456"."""
    folded = folded_number(value)
    if folded is None:
        raise InvalidDocumentNumber()
    return folded


# --- checks -------------------------------------------------------------------------------


def _named(exc: AppError, field: str) -> AppError:
    exc.details = [{"field": field, "message": exc.message}]
    return exc


def normalised(fields: ContactFields, *, country: Callable[[str], str]) -> dict[str, Any]:
    """The document fields of `fields` checked and folded (idempotent), by name; `country` is
    the service's ISO alpha-3 check."""
    out: dict[str, Any] = {}
    for name, member in UNIQUE_NUMBERS.items():
        value = getattr(fields, name)
        if value is not None and value is not UNSET:
            try:
                out[name] = matching_form(value)
            except AppError as exc:
                raise _named(exc, member) from None
    for name, member in COUNTRIES.items():
        value = getattr(fields, name)
        if value is not None and value is not UNSET:
            try:
                out[name] = country(value)
            except AppError as exc:
                raise _named(exc, member) from None
    identifiers = fields.loyalty_identifiers
    if identifiers is not None and identifiers is not UNSET:
        folded: list[str] = []
        for index, value in enumerate(identifiers):
            try:
                folded.append(matching_form(value))
            except AppError as exc:
                raise _named(exc, f"loyalty_identifiers.{index}.identifier") from None
        if len(folded) > MAX_LOYALTY_IDENTIFIERS:
            raise _named(
                InvalidDocumentNumber("Too many loyalty identifiers."), "loyalty_identifiers"
            )
        out["loyalty_identifiers"] = list(dict.fromkeys(folded))
    month, day = or_none(fields.name_day_month), or_none(fields.name_day_day)
    if month is not None or day is not None:
        try:
            if month is None or day is None:
                raise ValueError("month and day")
            dt.date(2000, int(month), int(day))  # a leap year: 29 February is a name day
        except (TypeError, ValueError):
            raise _named(InvalidNameDay(), "demographics.name_day") from None
    return out


async def check_unique(
    session: AsyncSession,
    *,
    tenant_id: str,
    mode: str,
    fields: ContactFields,
    contact_pk: int | None,
) -> None:
    """409 DOCUMENT_IN_USE, naming the member, when another contact holds a number of `fields`.

    Checked first for a clear answer; the unique constraints settle a race (409 as well).
    """
    others = [] if contact_pk is None else [Contact.pk != contact_pk]
    for name, member in UNIQUE_NUMBERS.items():
        value = or_none(getattr(fields, name))
        if value is None:
            continue
        column = getattr(Contact, name)
        taken = await session.scalar(
            select(Contact.pk)
            .where(Contact.tenant_id == tenant_id, Contact.mode == mode, column == value, *others)
            .limit(1)
        )
        if taken is not None:
            raise _named(DocumentInUse(), member)
    identifiers = or_none(fields.loyalty_identifiers)
    if identifiers:
        loyalty_others = (
            [] if contact_pk is None else [ContactLoyaltyIdentifier.contact_pk != contact_pk]
        )
        taken_id = await session.scalar(
            select(ContactLoyaltyIdentifier.identifier)
            .where(
                ContactLoyaltyIdentifier.tenant_id == tenant_id,
                ContactLoyaltyIdentifier.mode == mode,
                ContactLoyaltyIdentifier.identifier.in_(identifiers),
                *loyalty_others,
            )
            .limit(1)
        )
        if taken_id is not None:
            index = identifiers.index(taken_id)
            raise _named(DocumentInUse(), f"loyalty_identifiers.{index}.identifier")


async def store_loyalty(session: AsyncSession, contact: Contact) -> None:
    """Make the matching rows the contact's `loyalty_identifiers` (after a change or erasure)."""
    await session.execute(
        delete(ContactLoyaltyIdentifier).where(ContactLoyaltyIdentifier.contact_pk == contact.pk)
    )
    for identifier in contact.loyalty_identifiers or []:
        session.add(
            ContactLoyaltyIdentifier(
                id=uuid7(),
                contact_pk=contact.pk,
                tenant_id=contact.tenant_id,
                mode=contact.mode,
                identifier=identifier,
            )
        )


# --- lookups ------------------------------------------------------------------------------


async def contact_by_number(
    session: AsyncSession, *, tenant_id: str, mode: str, field: str, value: str
) -> int | None:
    """The live contact holding a document (`passport_number`, `id_number`,
    `statutory_number`) or loyalty identifier (`loyalty_identifiers`), or None."""
    try:
        folded = matching_form(value)
    except AppError:
        return None
    if field not in (*UNIQUE_NUMBERS, "loyalty_identifiers"):
        raise ValueError(field)
    if field == "loyalty_identifiers":
        query = select(ContactLoyaltyIdentifier.contact_pk).where(
            ContactLoyaltyIdentifier.tenant_id == tenant_id,
            ContactLoyaltyIdentifier.mode == mode,
            ContactLoyaltyIdentifier.identifier == folded,
        )
    else:
        query = select(Contact.pk).where(
            Contact.tenant_id == tenant_id,
            Contact.mode == mode,
            getattr(Contact, field) == folded,
            Contact.erased_at.is_(None),
        )
    found: int | None = await session.scalar(query.limit(1))
    return found
