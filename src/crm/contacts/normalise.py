"""Normalising a contact's domain-checked values: phones to E.164, countries to alpha-3, emails
to their display form and matching key, one primary phone and address.

Both surfaces and the import pass through here (via `crm.contacts.service`), so a value is
stored in one form whichever way it came in.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from crm.contacts import documents
from crm.contacts.contact_fields import PHONES as PHONES
from crm.contacts.contact_fields import UNSET, Address, ContactFields, Phone
from crm.contacts.errors import DuplicatePhone, MultiplePrimary
from crm.errors import AppError
from crm.identifiers.core import (
    MAX_EMAIL_LENGTH,
    normalize_country,
    normalize_email,
    phone_e164_and_country,
)
from crm.ids import uuid7


def _with_field(exc: AppError, field: str) -> AppError:
    """Name the offending field in the error's details (API.md section 2)."""
    if not exc.details:
        exc.details = [{"field": field, "message": exc.message}]
    return exc


def normalise_fields(fields: ContactFields, *, test_mode: bool = False) -> ContactFields:
    """Normalise the domain-checked values of `fields`; raise an AppError naming the field.

    Idempotent, so callers that already normalised (Self-Service) lose nothing by passing
    through it. `test_mode` admits the reserved test email domains (nothing leaves in test mode).
    """
    out: dict[str, Any] = {}
    country = fields.country_of_agreement
    if country is not None and country is not UNSET:
        try:
            out["country_of_agreement"] = normalize_country(country)
        except AppError as exc:
            raise _with_field(exc, "country_of_agreement") from None
    email = fields.email_address
    if email is not None and email is not UNSET:
        try:
            out["email_address"] = _email(email, test_mode)[0]
        except AppError as exc:
            raise _with_field(exc, "email_address") from None
    phones = fields.phones
    if phones is not None and phones is not UNSET:
        out[PHONES] = _normalise_phones(phones)
    addresses = fields.addresses
    if addresses is not None and addresses is not UNSET:
        out["addresses"] = normalise_addresses(addresses)
    out.update(documents.normalised(fields, country=normalize_country))
    return fields._replace(**out) if out else fields


def _normalise_phones(phones: Sequence[Phone]) -> list[Phone]:
    result: list[Phone] = []
    seen: set[str] = set()
    for index, phone in enumerate(phones):
        field = f"phones.{index}"
        country = phone.get("country_code")
        try:
            e164, alpha3 = phone_e164_and_country(str(phone.get("number") or ""), country)
        except AppError as exc:
            raise _with_field(exc, f"{field}.number") from None
        if e164 in seen:
            raise DuplicatePhone(details=[{"field": f"{field}.number", "message": e164}])
        seen.add(e164)
        result.append(
            Phone(
                phone_type=phone.get("phone_type") or "MOBILE",
                country_code=alpha3,
                number=e164,
                is_primary=bool(phone.get("is_primary")),
            )
        )
    _one_primary(result, "phones")
    return result


def normalise_addresses(addresses: Sequence[Mapping[str, Any]]) -> list[Address]:
    """Addresses with their countries in alpha-3, an id each and one primary."""
    result: list[Address] = []
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


def _one_primary(items: Sequence[Phone] | Sequence[Address], field: str) -> None:
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
    fast = _plain_email(value, test_mode)
    if fast is not None:
        return fast
    email = normalize_email(value, test_mode=test_mode)
    return email.display, email.canonical


# An ASCII dot-atom local part (RFC 5322 3.2.3, email-validator's DOT_ATOM_TEXT) at a domain of
# ASCII hostname characters: what nearly every address in a bulk import looks like.
_ATEXT = r"A-Za-z0-9_!#$%&'*+\-/=?^`{|}~"
_PLAIN_EMAIL = re.compile(rf"([{_ATEXT}]+(?:\.[{_ATEXT}]+)*)@([A-Za-z0-9.-]+)")


def _plain_email(value: str, test_mode: bool) -> tuple[str, str] | None:
    """`normalize_email`'s answer for a plain ASCII address, or None to ask it.

    normalize_email's work (email-validator's syntax rules, the domain's IDNA and script checks)
    is a third of a bulk import's validation. For such an address it splits in two: the local
    part is valid and its key is its lower case (NFC, NFKC and the invisible-character rule
    change nothing in ASCII; email-validator accepts every dot-atom local part, of any length
    outside its strict mode, and hands it back as given or lower-cased), and the rest depends
    on the domain alone, so it is asked once per domain with a stand-in local part. The total
    length rule is the same on every form of such an address (no IDNA label to decode), so
    254 characters decide it. tests/unit/test_import_fast_paths.py compares the two paths.
    """
    if not isinstance(value, str):
        return None
    display = value.strip()
    if len(display) > MAX_EMAIL_LENGTH or not display.isascii():
        return None
    match = _PLAIN_EMAIL.fullmatch(display)
    if match is None:
        return None
    local, domain = match.groups()
    if "xn--" in domain.lower():
        return None
    domain_key = _domain_key(domain, test_mode)
    if domain_key is None:
        return None  # refused: normalize_email gives the error for the address itself
    return display, f"{local.lower()}@{domain_key}"


@functools.lru_cache(maxsize=4096)
def _domain_key(domain: str, test_mode: bool) -> str | None:
    """The matching form of an address's domain, None when normalize_email refuses it."""
    try:
        email = normalize_email(f"a@{domain}", test_mode=test_mode)
    except AppError:
        return None
    return email.canonical.partition("@")[2]
