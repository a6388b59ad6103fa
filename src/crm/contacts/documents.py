"""The contact fields of CRM.COM's v2 schema that identify someone or describe a company:
name day, passport, id details, statutory number, company profile and loyalty identifiers.

Both surfaces write them through the same wire models and read them through the same
builders, so the Self-Service profile and the Back-Office contact always agree. Passport, id
and statutory numbers and loyalty identifiers are unique per tenant and mode (a code request
may name one to reach its contact); they are kept in a matching form, without the spaces,
dashes, dots and slashes people type, in upper case.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.contacts.errors import DocumentInUse, InvalidDocumentNumber, InvalidNameDay
from crm.contacts.models import Contact, ContactLoyaltyIdentifier
from crm.errors import AppError
from crm.ids import uuid7
from crm.text import clean_text

MAX_LOYALTY_IDENTIFIERS = 10
MAX_SUB_INDUSTRIES = 20
# Epoch seconds up to the year 9999: an expiry beyond is a typing error, not a document.
MAX_EPOCH = 253402300799

# The service's names of these fields: columns of `contacts`.
NAME_DAY_FIELDS = ("name_day_month", "name_day_day")
PASSPORT_FIELDS = ("passport_number", "passport_country", "passport_expiration")
ID_FIELDS = ("id_number", "id_country", "id_expiration")
COMPANY_FIELDS = (
    "registration_number",
    "registration_country",
    "tax_reference_number",
    "vat_registration_number",
    "industry_id",
    "sub_industries",
)
LIST_FIELDS = ("sub_industries", "loyalty_identifiers")
DOCUMENT_FIELDS = (
    *NAME_DAY_FIELDS,
    *PASSPORT_FIELDS,
    *ID_FIELDS,
    "statutory_number",
    *COMPANY_FIELDS,
    "loyalty_identifiers",
)
# Unique per tenant and mode, with the wire member a conflict names.
UNIQUE_NUMBERS = {
    "passport_number": "demographics.passport.number",
    "id_number": "demographics.id_details.number",
    "statutory_number": "demographics.statutory_number",
}
_COUNTRIES = {
    "passport_country": "demographics.passport.issuing_country_code",
    "id_country": "demographics.id_details.issuing_country_code",
    "registration_country": "company_profile.registration_country",
}
_SEPARATORS = re.compile(r"[\s\-./]+")
_NUMBER = re.compile(r"[0-9A-Z]{1,64}")


def matching_form(value: str) -> str:
    """A document or loyalty number as kept and matched: "ab 123-456" -> "AB123456"."""
    if not isinstance(value, str):
        raise InvalidDocumentNumber()
    folded = _SEPARATORS.sub("", value.strip()).upper()
    # fullmatch on ASCII only: upper() of some letters yields ASCII look-alikes.
    if not value.isascii() or not _NUMBER.fullmatch(folded):
        raise InvalidDocumentNumber()
    return folded


# --- what crosses the wire ----------------------------------------------------------------

Text64 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=64), AfterValidator(clean_text)
]
Number = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Country = Annotated[str, StringConstraints(strip_whitespace=True, max_length=8)]
Epoch = Annotated[int, Field(ge=0, le=MAX_EPOCH)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class NameDay(_Wire):
    month: Annotated[int, Field(ge=1, le=12)]
    day: Annotated[int, Field(ge=1, le=31)]


class Document(_Wire):
    """A passport or an identity card: CRM.COM requires all three; the number is enough here."""

    number: Number
    issuing_country_code: Country | None = None
    expiration_date: Epoch | None = Field(None, description="Epoch seconds.")


class SubIndustry(_Wire):
    id: Text64


class CompanyProfile(_Wire):
    registration_number: Text64 | None = None
    registration_country: Country | None = None
    tax_reference_number: Text64 | None = None
    vat_registration_number: Text64 | None = None
    industry_id: Text64 | None = None
    sub_industries: Annotated[list[SubIndustry], Field(max_length=MAX_SUB_INDUSTRIES)] | None = None


class LoyaltyIdentifier(_Wire):
    identifier: Number


class DemographicsExtra(_Wire):
    """The members of CRM.COM's demographics beyond gender and date of birth."""

    name_day: NameDay | None = None
    passport: Document | None = None
    id_details: Document | None = None
    statutory_number: Number | None = None


def _document(prefix: str, value: Document | None) -> dict[str, Any]:
    number, country, expiration = (f"{prefix}_{n}" for n in ("number", "country", "expiration"))
    if value is None:
        return {number: None, country: None, expiration: None}
    return {
        number: value.number,
        country: value.issuing_country_code or None,
        expiration: value.expiration_date,
    }


def demographics_changes(demo: DemographicsExtra | None, *, only_set: bool) -> dict[str, Any]:
    """The service fields a wire `demographics` sets (None: all cleared; only_set: partial)."""
    present = set(DemographicsExtra.model_fields)
    if demo is not None and only_set:
        present = demo.model_fields_set & present
    out: dict[str, Any] = {}
    if "name_day" in present:
        day = demo.name_day if demo is not None else None
        out["name_day_month"] = day.month if day else None
        out["name_day_day"] = day.day if day else None
    if "passport" in present:
        out.update(_document("passport", demo.passport if demo is not None else None))
    if "id_details" in present:
        out.update(_document("id", demo.id_details if demo is not None else None))
    if "statutory_number" in present:
        out["statutory_number"] = demo.statutory_number if demo is not None else None
    return out


def company_changes(profile: CompanyProfile | None, *, only_set: bool) -> dict[str, Any]:
    present = set(CompanyProfile.model_fields)
    if profile is not None and only_set:
        present = profile.model_fields_set & present
    out: dict[str, Any] = {}
    for name in present:
        value = getattr(profile, name) if profile is not None else None
        if name == "sub_industries":
            value = list(dict.fromkeys(s.id for s in value or [] if s.id))
        out[name] = value or ([] if name == "sub_industries" else None)
    return out


def loyalty_changes(identifiers: Sequence[LoyaltyIdentifier] | None) -> dict[str, Any]:
    return {"loyalty_identifiers": [i.identifier for i in identifiers or []]}


# --- checks -------------------------------------------------------------------------------


def _named(exc: AppError, field: str) -> AppError:
    exc.details = [{"field": field, "message": exc.message}]
    return exc


def normalise(fields: dict[str, Any], *, country: Callable[[str], str]) -> None:
    """Check and fold the document fields of `fields` in place (idempotent); `country` is the
    service's ISO alpha-3 check."""
    for name, member in UNIQUE_NUMBERS.items():
        if fields.get(name) is not None:
            try:
                fields[name] = matching_form(fields[name])
            except AppError as exc:
                raise _named(exc, member) from None
    for name, member in _COUNTRIES.items():
        if fields.get(name) is not None:
            try:
                fields[name] = country(fields[name])
            except AppError as exc:
                raise _named(exc, member) from None
    if fields.get("loyalty_identifiers") is not None:
        folded: list[str] = []
        for index, value in enumerate(fields["loyalty_identifiers"]):
            try:
                folded.append(matching_form(value))
            except AppError as exc:
                raise _named(exc, f"loyalty_identifiers.{index}.identifier") from None
        if len(folded) > MAX_LOYALTY_IDENTIFIERS:
            raise _named(
                InvalidDocumentNumber("Too many loyalty identifiers."), "loyalty_identifiers"
            )
        fields["loyalty_identifiers"] = list(dict.fromkeys(folded))
    month, day = fields.get("name_day_month"), fields.get("name_day_day")
    if month is not None or day is not None:
        try:
            if month is None or day is None:
                raise ValueError("month and day")
            dt.date(2000, int(month), int(day))  # a leap year: 29 February is a name day
        except (TypeError, ValueError):
            raise _named(InvalidNameDay(), "demographics.name_day") from None


async def check_unique(
    session: AsyncSession,
    *,
    tenant_id: str,
    mode: str,
    fields: Mapping[str, Any],
    contact_pk: int | None,
) -> None:
    """409 DOCUMENT_IN_USE, naming the member, when another contact holds a number of `fields`.

    Checked first for a clear answer; the unique constraints settle a race (409 as well).
    """
    others = [] if contact_pk is None else [Contact.pk != contact_pk]
    for name, member in UNIQUE_NUMBERS.items():
        value = fields.get(name)
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
    identifiers = fields.get("loyalty_identifiers")
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
            index = list(identifiers).index(taken_id)
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


# --- what is read back --------------------------------------------------------------------


def _document_out(values: Mapping[str, Any], prefix: str) -> dict[str, Any] | None:
    number = values.get(f"{prefix}_number")
    if not number:
        return None
    return {
        "number": number,
        "issuing_country_code": values.get(f"{prefix}_country"),
        "expiration_date": values.get(f"{prefix}_expiration"),
    }


def demographics_out(values: Mapping[str, Any]) -> dict[str, Any]:
    """name_day, passport, id_details and statutory_number as CRM.COM shows them (None: unset)."""
    month, day = values.get("name_day_month"), values.get("name_day_day")
    return {
        "name_day": {"month": month, "day": day} if month and day else None,
        "passport": _document_out(values, "passport"),
        "id_details": _document_out(values, "id"),
        "statutory_number": values.get("statutory_number"),
    }


def company_profile_out(values: Mapping[str, Any]) -> dict[str, Any] | None:
    industry = values.get("industry_id")
    out = {
        "registration_number": values.get("registration_number"),
        "registration_country": values.get("registration_country"),
        "tax_reference_number": values.get("tax_reference_number"),
        "vat_registration_number": values.get("vat_registration_number"),
        "industry": {"id": industry} if industry else None,
        "sub_industries": [{"id": s} for s in values.get("sub_industries") or []] or None,
    }
    return out if any(v is not None for v in out.values()) else None


def loyalty_out(values: Mapping[str, Any]) -> list[dict[str, str]] | None:
    return [{"identifier": i} for i in values.get("loyalty_identifiers") or []] or None


def values_of(contact: Contact) -> dict[str, Any]:
    return {name: getattr(contact, name) for name in DOCUMENT_FIELDS}
