"""What the credentials of a code request name: a sign-in identity (EMAIL, PHONE), a document
or loyalty identifier of the contact (LOYALTY_IDENTIFIER, ID_NUMBER, PASSPORT, STATUTORY_ID), or
a birth date that narrows another credential (BIRTHDATE).

A document names a contact, and the code goes to that contact's proven phone or email. Nothing
here reads the database; signin looks the values up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import phonenumbers

from crm.documents import folded_number
from crm.errors import AppError, InvalidRequest
from crm.identifiers.core import normalize_email, normalize_phone, phone_credential
from crm.identifiers.countries import ALPHA3_TO_ALPHA2
from crm.identities.errors import BirthdateAlone, CredentialNotSupported, ProviderNotSupported
from crm.identities.schemas import CredentialIn
from crm.security.crypto import hmac_sha256

# CRM.COM's credential names, and the contact field each document is held in.
DOCUMENTS = {
    "LOYALTY_IDENTIFIER": "loyalty_identifiers",
    "ID_NUMBER": "id_number",
    "PASSPORT": "passport_number",
    "STATUTORY_ID": "statutory_number",
}
# Credentials of CRM.COM's payment and gift-pass products: refused with their own code.
OTHER_PRODUCTS = frozenset({"CARD", "GIFT_PASS"})
_EMAIL_NAMES = frozenset({"EMAIL", "EMAIL_ADDRESS", "USERNAME"})
_PHONE_NAMES = frozenset({"PHONE", "PHONE_NUMBER", "MOBILE"})
# Where a decoy's made-up address is kept: common mailbox providers, so it looks like any other.
_DECOY_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com")


@dataclass(frozen=True, slots=True)
class Named:
    """The credentials of one request, sorted by what they name."""

    identities: list[tuple[str, str]] = field(default_factory=list)  # (provider, identifier)
    documents: list[tuple[str, str]] = field(default_factory=list)  # (contact field, value)
    birthdate: dt.date | None = None


def identity_of(
    credential: CredentialIn, mode: str, default_country: str | None
) -> tuple[str, str]:
    """(provider, identifier) of an EMAIL or PHONE credential; other names raise."""
    name = credential.name.upper()
    if name in _EMAIL_NAMES:
        return "EMAIL", normalize_email(credential.value, test_mode=mode == "test").canonical
    if name in _PHONE_NAMES:
        return "PHONE", phone_credential(credential.value, default_country)
    if name in OTHER_PRODUCTS:
        raise CredentialNotSupported()
    raise ProviderNotSupported()


def _birthdate(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRequest(
            "A BIRTHDATE credential is a date: YYYY-MM-DD.",
            details=[{"field": "credentials.value", "message": "YYYY-MM-DD"}],
        ) from None


def sort(credentials: list[CredentialIn], mode: str, default_country: str | None) -> Named:
    """Sort the credentials; 400 for names this server does not know, CARD and GIFT_PASS, and a
    BIRTHDATE alone. Bad values of known names answer as in identity_of."""
    named = Named()
    birthdate: dt.date | None = None
    for credential in credentials:
        name = credential.name.upper()
        if name in DOCUMENTS:
            named.documents.append((DOCUMENTS[name], credential.value))
        elif name == "BIRTHDATE":
            birthdate = _birthdate(credential.value)
        else:
            named.identities.append(identity_of(credential, mode, default_country))
    if birthdate is not None and not (named.identities or named.documents):
        raise BirthdateAlone()
    return Named(named.identities, named.documents, birthdate)


def decoy_identity(
    secret: str,
    *,
    tenant_id: str,
    mode: str,
    documents: list[tuple[str, str]],
    method: str | None,
    default_country: str | None,
) -> tuple[str, str]:
    """A made-up (provider, identifier) standing for documents nobody holds, so the decoy's
    answer has a known contact's shape: a masked phone (of the default country) or email, the
    same one every time for the same documents."""
    seed = hmac_sha256(
        secret,
        "document-decoy",
        # The matching form: two spellings of one number must get one answer, as they do for
        # a number someone holds.
        "|".join(
            [tenant_id, mode, *sorted(f"{f}={folded_number(v) or v}" for f, v in documents)]
        ).encode(),
    )
    digits = "".join(str(int(ch, 16) % 10) for ch in seed)
    if method != "EMAIL" and default_country is not None:
        phone = _made_up_mobile(default_country, digits)
        if phone is not None:
            return "PHONE", phone
    letters = "".join(chr(ord("a") + int(ch, 16) % 26) for ch in seed[:8])
    domain = _DECOY_DOMAINS[int(seed[8:10], 16) % len(_DECOY_DOMAINS)]
    return "EMAIL", f"{letters}@{domain}"


def _made_up_mobile(country: str, digits: str) -> str | None:
    """A valid mobile number of `country` (E.164) whose subscriber digits come from `digits`."""
    example = phonenumbers.example_number_for_type(
        ALPHA3_TO_ALPHA2[country], phonenumbers.PhoneNumberType.MOBILE
    )
    if example is None:
        return None
    national = str(example.national_number)
    # The example's leading digits keep the mobile range; the rest are the seed's.
    keep = min(3, len(national) - 4)
    for start in range(0, len(digits) - len(national)):
        candidate = national[:keep] + digits[start : start + len(national) - keep]
        try:
            return normalize_phone(candidate, country, strict=True).e164
        except AppError:
            continue
    return None
