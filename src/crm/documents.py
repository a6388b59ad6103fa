"""CRM.COM's v2 contact members that identify someone or describe a company, as they cross
the wire: name day, passport, id details, statutory number, company profile and loyalty
identifiers.

Shared by both surfaces (the Back-Office contact and the Self-Service profile) so they always
agree: the request models, their mapping to the contact's columns, and the answers' shapes.
The rules on the values (matching form, uniqueness) are crm.contacts.documents'.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from crm.contacts import contact_fields
from crm.text import clean_text

MAX_LOYALTY_IDENTIFIERS = 10
MAX_SUB_INDUSTRIES = 20
# Epoch seconds up to the year 9999: an expiry beyond is a typing error, not a document.
MAX_EPOCH = 253402300799

# The service's names of these fields (columns of `contacts`) are declared with the others.
DOCUMENT_FIELDS = contact_fields.DOCUMENT_FIELDS
LIST_FIELDS = contact_fields.DOCUMENT_LIST_FIELDS
# Unique per tenant and mode, with the wire member a conflict names.
UNIQUE_NUMBERS = {
    "passport_number": "demographics.passport.number",
    "id_number": "demographics.id_details.number",
    "statutory_number": "demographics.statutory_number",
}
COUNTRIES = {
    "passport_country": "demographics.passport.issuing_country_code",
    "id_country": "demographics.id_details.issuing_country_code",
    "registration_country": "company_profile.registration_country",
}
_SEPARATORS = re.compile(r"[\s\-./]+")
_NUMBER = re.compile(r"[0-9A-Z]{1,64}")


def folded_number(value: str) -> str | None:
    """A document or loyalty number as kept and matched ("ab 123-456" -> "AB123456"), or None
    when it cannot be one (crm.contacts.documents refuses those)."""
    if not isinstance(value, str) or not value.isascii():
        # ASCII only: upper() of some letters yields ASCII look-alikes.
        return None
    folded = _SEPARATORS.sub("", value.strip()).upper()
    return folded if _NUMBER.fullmatch(folded) else None


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
