"""Normalising a contact's domain-checked values: phones to E.164, countries to alpha-3, emails
to their display form and matching key, one primary phone and address.

Both surfaces and the import pass through here (via `crm.contacts.service`), so a value is
stored in one form whichever way it came in.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from crm.contacts import documents
from crm.contacts.errors import DuplicatePhone, MultiplePrimary
from crm.errors import AppError
from crm.identities.identifiers import normalize_country, normalize_email, normalize_phone
from crm.ids import uuid7

# Fields kept in their own table rather than a column of `contacts`.
PHONES = "phones"


def _with_field(exc: AppError, field: str) -> AppError:
    """Name the offending field in the error's details (API.md section 2)."""
    if not exc.details:
        exc.details = [{"field": field, "message": exc.message}]
    return exc


def normalise_fields(fields: Mapping[str, Any], *, test_mode: bool = False) -> dict[str, Any]:
    """Normalise the domain-checked values of `fields`; raise an AppError naming the field.

    Idempotent, so callers that already normalised (Self-Service) lose nothing by passing
    through it. `test_mode` admits the reserved test email domains (nothing leaves in test mode).
    """
    out = dict(fields)
    if out.get("country_of_agreement") is not None:
        try:
            out["country_of_agreement"] = normalize_country(out["country_of_agreement"])
        except AppError as exc:
            raise _with_field(exc, "country_of_agreement") from None
    if out.get("email_address") is not None:
        try:
            out["email_address"] = _email(out["email_address"], test_mode)[0]
        except AppError as exc:
            raise _with_field(exc, "email_address") from None
    if out.get(PHONES) is not None:
        out[PHONES] = _normalise_phones(out[PHONES])
    if out.get("addresses") is not None:
        out["addresses"] = _normalise_addresses(out["addresses"])
    documents.normalise(out, country=normalize_country)
    return out


def _normalise_phones(phones: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, phone in enumerate(phones):
        field = f"phones.{index}"
        country = phone.get("country_code")
        try:
            parsed = normalize_phone(str(phone.get("number") or ""), country)
        except AppError as exc:
            raise _with_field(exc, f"{field}.number") from None
        if parsed.e164 in seen:
            raise DuplicatePhone(details=[{"field": f"{field}.number", "message": parsed.e164}])
        seen.add(parsed.e164)
        result.append(
            {
                "phone_type": phone.get("phone_type") or "MOBILE",
                "country_code": parsed.country_code,
                "number": parsed.e164,
                "is_primary": bool(phone.get("is_primary")),
            }
        )
    _one_primary(result, "phones")
    return result


def _normalise_addresses(addresses: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for index, address in enumerate(addresses):
        item = {k: v for k, v in address.items() if k != "id"}
        if item.get("country_code") is not None:
            try:
                item["country_code"] = normalize_country(item["country_code"])
            except AppError as exc:
                raise _with_field(exc, f"addresses.{index}.country_code") from None
        item["is_primary"] = bool(item.get("is_primary"))
        item["id"] = address.get("id") or uuid7()
        result.append(item)
    _one_primary(result, "addresses")
    return result


def _one_primary(items: list[dict[str, Any]], field: str) -> None:
    primaries = sum(1 for item in items if item["is_primary"])
    if primaries > 1:
        raise MultiplePrimary(details=[{"field": field, "message": MultiplePrimary.message}])
    # A single item, or a list with none marked, gets the first as primary: clients reading
    # "the primary phone" should always find one when there is any.
    if items and primaries == 0:
        items[0]["is_primary"] = True


@functools.lru_cache(maxsize=64)
def _email(value: str, test_mode: bool) -> tuple[str, str]:
    """An address's display form and matching key (a bulk import checks each once, not twice)."""
    email = normalize_email(value, test_mode=test_mode)
    return email.display, email.canonical
