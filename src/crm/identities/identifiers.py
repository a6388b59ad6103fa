"""Normalising and masking the values people sign in with: countries, phone numbers and emails."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from crm.errors import InvalidCountry, InvalidEmail, InvalidPhone
from crm.identities.countries import ALPHA2_TO_ALPHA3, ALPHA3_TO_ALPHA2

# E.164 caps a number at 15 digits including the country calling code.
MAX_E164_DIGITS: Final = 15
# The lenient rule of API.md section 3 "Register": the seed registers Cyprus's 7-digit 9947823.
MIN_NATIONAL_DIGITS: Final = 4
MAX_NATIONAL_DIGITS: Final = 14
# RFC 5321 limits a forward path to 256 octets including the angle brackets.
MAX_EMAIL_LENGTH: Final = 254
# Anything longer than this cannot be a phone number even with generous punctuation; refusing
# it early keeps the work per request small.
_MAX_PHONE_INPUT: Final = 64
# Separators people type inside numbers. Letters (vanity numbers like 1-800-FLOWERS) are refused:
# the identity must be the digits a code is actually sent to.
_PHONE_SEPARATORS: Final = frozenset(" -.()[]/\t\u00a0")
_ASCII_DIGITS: Final = frozenset("0123456789")
# Unicode general categories never legitimate in an address: controls, format characters (zero
# width space and joiners, bidi overrides and isolates, BOM, soft hyphen), surrogates,
# private use, unassigned, and line/paragraph separators. They make two addresses look the
# same on screen while being different strings.
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A phone number in the forms the rest of the code needs."""

    e164: str  # "+3579947823": the identity's value, unique per tenant and mode
    country_code: str  # ISO 3166-1 alpha-3, "CYP"
    national: str  # national significant number, digits only, "9947823"
    display: str  # international format for people, "+357 9947823"


@dataclass(frozen=True, slots=True)
class Email:
    """An email address as written (to display and send to) and its matching key."""

    canonical: str  # the lookup key: unique per tenant and mode, compared exactly
    display: str  # as the person wrote it (trimmed, NFC): messages are sent here


def normalize_country(code: str) -> str:
    """Return `code` as an upper-case ISO 3166-1 alpha-3 code, or raise InvalidCountry."""
    if not isinstance(code, str):
        raise InvalidCountry()
    candidate = code.strip().upper()
    # isascii() first: upper() of some non-ASCII letters yields ASCII ("ı".upper() == "I").
    if not code.strip().isascii() or candidate not in ALPHA3_TO_ALPHA2:
        raise InvalidCountry(f"Unknown ISO 3166-1 alpha-3 country code {code.strip()[:8]!r}.")
    return candidate


def _calling_code_for_country(alpha3: str) -> int:
    calling_code = int(phonenumbers.country_code_for_region(ALPHA3_TO_ALPHA2[alpha3]))
    if calling_code == 0:
        # Antarctica, Bouvet Island and a few other uninhabited territories have no calling code
        # of their own in the numbering plan, so no number can be formed for them.
        raise InvalidPhone(f"No telephone calling code is known for country {alpha3}.")
    return calling_code


def _split_calling_code(digits: str) -> tuple[int, str]:
    # Calling codes are a prefix code (ITU-T E.164): at most one of the 1-, 2- and 3-digit
    # prefixes is assigned, so the first match is the only one. No code starts with 0, and
    # int("01") == 1 must not read "+01..." as +1.
    if digits.startswith("0"):
        raise InvalidPhone("The number does not start with a known country calling code.")
    for size in (1, 2, 3):
        prefix = int(digits[:size]) if len(digits) >= size else -1
        if prefix in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return prefix, digits[size:]
    raise InvalidPhone("The number does not start with a known country calling code.")


def _main_region(calling_code: int) -> str:
    return str(phonenumbers.region_code_for_country_code(calling_code))


def _strip_trunk_zero(calling_code: int, national: str) -> str:
    # In countries whose trunk (national) prefix is 0, people write "+44 (0)20..." or
    # "020..." for "+44 20..."; no national significant number there starts with 0. Italy and
    # Cyprus have no trunk prefix and keep every digit. Other trunk prefixes (the US "1", Russia's
    # "8") are left alone because they can also begin a real national number.
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(_main_region(calling_code))
    if metadata is not None and metadata.national_prefix == "0" and national.startswith("0"):
        return national[1:]
    return national


def _clean_phone(value: str) -> tuple[bool, str]:
    """Return (has an international prefix, the digits) or raise InvalidPhone."""
    if not isinstance(value, str):
        raise InvalidPhone()
    text = value.strip()
    if not text or len(text) > _MAX_PHONE_INPUT:
        raise InvalidPhone()
    international = text.startswith("+")
    if international:
        text = text[1:]
    digits = "".join(ch for ch in text if ch not in _PHONE_SEPARATORS)
    # Only ASCII digits: str.isdigit() would admit fullwidth or Arabic-Indic digits and so give
    # one number two spellings; "+" is allowed only in front.
    if not digits or not set(digits) <= _ASCII_DIGITS:
        raise InvalidPhone(
            "A phone number may contain only digits, spaces, dashes, dots, brackets."
        )
    if not international and digits.startswith("00"):
        international, digits = True, digits[2:]
    return international, digits


def _build(
    calling_code: int, national: str, requested_alpha3: str | None, *, strict: bool
) -> PhoneNumber:
    national = _strip_trunk_zero(calling_code, national)
    if not MIN_NATIONAL_DIGITS <= len(national) <= MAX_NATIONAL_DIGITS:
        raise InvalidPhone(
            f"The national number must have {MIN_NATIONAL_DIGITS} to {MAX_NATIONAL_DIGITS} digits."
        )
    e164 = f"+{calling_code}{national}"
    if len(e164) - 1 > MAX_E164_DIGITS:
        raise InvalidPhone(f"A phone number has at most {MAX_E164_DIGITS} digits.")
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone() from exc

    # Where several countries share a calling code (+1, +7, +44...), the number's own pattern
    # decides; failing that, the country the caller named if it shares the code; failing that,
    # the code's main country.
    region = phonenumbers.region_code_for_number(parsed)
    if (
        region is None
        and requested_alpha3 is not None
        and phonenumbers.country_code_for_region(ALPHA3_TO_ALPHA2[requested_alpha3]) == calling_code
    ):
        region = ALPHA3_TO_ALPHA2[requested_alpha3]
    if region is None:
        region = _main_region(calling_code)
    alpha3 = ALPHA2_TO_ALPHA3.get(str(region))
    if alpha3 is None:
        # Non-geographic codes (+800, +882, ...) belong to no country; such numbers cannot
        # receive our SMS reliably and have no country to file the contact under.
        raise InvalidPhone("The number belongs to no country.")

    if strict and not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone("The number is not a valid phone number for its country.")
    display = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return PhoneNumber(e164=e164, country_code=alpha3, national=national, display=display)


def normalize_phone(number: str, country_code: str | None, *, strict: bool = False) -> PhoneNumber:
    """Normalise a phone number as typed to E.164, following API.md section 3 "Register".

    Lenient (default): after removing spaces, dashes, dots and brackets, the number is digits; with
    a `+` or `00` prefix it carries its calling code and `country_code` is optional (the prefix
    wins when they disagree, as the person typed it explicitly); otherwise it is a national
    number of `country_code`, one leading trunk 0 dropped where the country dials one. The national
    part has 4 to 14 digits and the whole at most 15. `strict=True` also requires
    phonenumbers.is_valid_number (an application setting).
    """
    requested = normalize_country(country_code) if country_code is not None else None
    international, digits = _clean_phone(number)
    if international:
        calling_code, national = _split_calling_code(digits)
        return _build(calling_code, national, requested, strict=strict)
    if requested is None:
        raise InvalidPhone("A country code is required unless the number starts with + or 00.")
    calling_code = _calling_code_for_country(requested)
    # A person may type the calling code without "+" ("35799123456" with CYP). Read it that way
    # only if the result is a valid number and the national reading is not, so that a national
    # number which happens to begin with the same digits keeps its meaning.
    prefix = str(calling_code)
    if digits.startswith(prefix) and len(digits) <= MAX_E164_DIGITS:
        as_national = _try_valid(calling_code, digits)
        as_international = _try_valid(calling_code, digits[len(prefix) :])
        if as_international and not as_national:
            return _build(calling_code, digits[len(prefix) :], requested, strict=strict)
    return _build(calling_code, digits, requested, strict=strict)


def _try_valid(calling_code: int, national: str) -> bool:
    try:
        parsed = phonenumbers.parse(f"+{calling_code}{national}", None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(parsed))


def parse_phone_credential(value: str) -> str:
    """Return E.164 for a credentials value: "+35799123456", "0035799123456" or "35799123456".

    Credentials carry no separate country, so the value must include its calling code; bare
    digits are read as digits with the calling code, as API.md section 3 "One-time codes" says.
    """
    _, digits = _clean_phone(value)
    calling_code, national = _split_calling_code(digits)
    return _build(calling_code, national, None, strict=False).e164


def _reject_invisible(value: str) -> None:
    for ch in value:
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES or ch.isspace():
            raise InvalidEmail(f"The email address contains a forbidden character U+{ord(ch):04X}.")


def normalize_email(email: str) -> Email:
    """Check an email's syntax (no DNS) and return its display form and case-insensitive key.

    The canonical key is the address NFKC-normalised and case-folded (RFC 8265's approach for
    identifiers): "John@Example.COM", "john@example.com" and a fullwidth "ｊｏｈｎ@example.com"
    are one identity. Dots and "+tags" are NOT removed: that equivalence holds only at some
    providers (Gmail); elsewhere "a.b@" and "ab@" are different mailboxes, and merging them
    would let one person block or claim another's identity. Because the key can merge
    addresses that differ in case, messages must always go to the stored `display`, never to
    an address a caller typed.
    """
    if not isinstance(email, str):
        raise InvalidEmail()
    display = unicodedata.normalize("NFC", email.strip())
    if not display:
        raise InvalidEmail("The email address is empty.")
    if len(display) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(f"The email address is longer than {MAX_EMAIL_LENGTH} characters.")
    # email-validator refuses most of these too; checking first gives one clear rule that does
    # not depend on the library's version.
    _reject_invisible(display)
    try:
        validated = validate_email(display, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from exc
    # validated.domain is the IDNA-normalised Unicode form, so "xn--bcher-kva.example" and
    # "bücher.example" give the same key.
    local = unicodedata.normalize("NFKC", validated.local_part)
    canonical_local = unicodedata.normalize("NFKC", local.casefold())
    canonical_domain = unicodedata.normalize("NFKC", validated.domain.casefold())
    return Email(canonical=f"{canonical_local}@{canonical_domain}", display=display)


def obfuscate_phone(e164: str) -> str:
    """Mask the middle of an E.164 number: "+3579947823" -> "+357994***23".

    The calling code and a few leading and trailing digits stay visible, enough for a person
    to recognise their own number and no more; at least two digits are always hidden.
    """
    if not isinstance(e164, str) or not e164.startswith("+") or not e164[1:].isascii():
        raise InvalidPhone()
    digits = e164[1:]
    if not digits.isdigit():
        raise InvalidPhone()
    calling_code, national = _split_calling_code(digits)
    size = len(national)
    head = min(3, max(0, size - 4))
    tail = min(2, max(0, size - head - 2))
    return f"+{calling_code}{national[:head]}***{national[size - tail :] if tail else ''}"


def obfuscate_email(email: str) -> str:
    """Mask the local part of an address: "ahmed.samir@example.com" -> "ah***@example.com".

    The domain stays whole so a person can tell which mailbox to look in; of the local part at
    most two leading characters, and never more than half of it, are shown.
    """
    local, sep, domain = email.rpartition("@")
    if not sep or not local:
        raise InvalidEmail()
    shown = min(2, len(local) // 2)
    return f"{local[:shown]}***@{domain}"
