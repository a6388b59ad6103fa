"""Normalising and masking the values people sign in with: countries, phone numbers and emails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import phonenumbers

from crm.errors import InvalidCountry, InvalidPhone
from crm.identifiers import phone_rules
from crm.identifiers.countries import ALPHA2_TO_ALPHA3, ALPHA3_TO_ALPHA2

# Emails live in their own module; these names stay importable from here.
from crm.identifiers.emails import MAX_EMAIL_LENGTH as MAX_EMAIL_LENGTH
from crm.identifiers.emails import Email as Email
from crm.identifiers.emails import normalize_email as normalize_email
from crm.identifiers.emails import obfuscate_email as obfuscate_email

# E.164 caps a number at 15 digits including the country calling code.
MAX_E164_DIGITS: Final = 15
# The lenient rule of API.md section 3 "Register": the seed registers Cyprus's 7-digit 9947823.
MIN_NATIONAL_DIGITS: Final = 4
MAX_NATIONAL_DIGITS: Final = 14
# Anything longer than this cannot be a phone number even with generous punctuation; refusing
# it early keeps the work per request small.
_MAX_PHONE_INPUT: Final = 64
# Separators people type inside numbers. Letters (vanity numbers like 1-800-FLOWERS) are refused:
# the identity must be the digits a code is actually sent to.
_PHONE_SEPARATORS: Final = frozenset(" -.()[]/\t\u00a0")
# str.translate deletes the separators in one pass (a generator over the characters cost more
# than the rest of the cleaning).
_DROP_SEPARATORS: Final = str.maketrans(dict.fromkeys(_PHONE_SEPARATORS))


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A phone number in the forms the rest of the code needs."""

    e164: str  # "+3579947823": the identity's value, unique per tenant and mode
    country_code: str  # ISO 3166-1 alpha-3, "CYP"
    national: str  # national significant number, digits only, "9947823"
    display: str  # international format for people, "+357 9947823"


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
    digits = text.translate(_DROP_SEPARATORS)
    # Only ASCII digits: str.isdigit() alone would admit fullwidth or Arabic-Indic digits (and
    # superscripts) and so give one number two spellings; "+" is allowed only in front.
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise InvalidPhone(
            "A phone number may contain only digits, spaces, dashes, dots, brackets."
        )
    if not international and digits.startswith("00"):
        international, digits = True, digits[2:]
    return international, digits


def _resolve(
    calling_code: int,
    national: str,
    requested_alpha3: str | None,
    *,
    strict: bool,
    sms: bool = False,
) -> tuple[str, str, str, phonenumbers.PhoneNumber]:
    """The checked E.164 form, country (alpha-3), national number and parsed number."""
    national = _strip_trunk_zero(calling_code, national)
    requested_region = ALPHA3_TO_ALPHA2[requested_alpha3] if requested_alpha3 else None
    if (
        requested_region is None
        or phonenumbers.country_code_for_region(requested_region) != calling_code
    ):
        requested_region = _main_region(calling_code)
    national, parsed_on_the_way = phone_rules.fold_national_parsed(
        calling_code, national, requested_region
    )
    if not MIN_NATIONAL_DIGITS <= len(national) <= MAX_NATIONAL_DIGITS:
        raise InvalidPhone(
            f"The national number must have {MIN_NATIONAL_DIGITS} to {MAX_NATIONAL_DIGITS} digits."
        )
    e164 = f"+{calling_code}{national}"
    if len(e164) - 1 > MAX_E164_DIGITS:
        raise InvalidPhone(f"A phone number has at most {MAX_E164_DIGITS} digits.")
    # The folding parsed exactly `e164` when it found it valid: parsing it again (a third of a
    # bulk import's phone work) would give an equal number.
    parsed = parsed_on_the_way
    if parsed is None:
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

    if sms:
        # First, so a premium-rate number is named as such in strict mode too.
        phone_rules.check_for_sms(e164, str(region), strict=strict)
    if strict and not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone("The number is not a valid phone number for its country.")
    return e164, alpha3, national, parsed


def _build(
    calling_code: int,
    national: str,
    requested_alpha3: str | None,
    *,
    strict: bool,
    sms: bool = False,
) -> PhoneNumber:
    e164, alpha3, national, parsed = _resolve(
        calling_code, national, requested_alpha3, strict=strict, sms=sms
    )
    display = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return PhoneNumber(e164=e164, country_code=alpha3, national=national, display=display)


def _read(number: str, country_code: str | None) -> tuple[int, str, str | None]:
    """The calling code, the national digits and the requested country (alpha-3) of a number as
    typed, for `_resolve`."""
    requested = normalize_country(country_code) if country_code is not None else None
    international, digits = _clean_phone(number)
    if international:
        calling_code, national = _split_calling_code(digits)
        return calling_code, national, requested
    if requested is None:
        raise InvalidPhone("A country code is required unless the number starts with + or 00.")
    calling_code = _calling_code_for_country(requested)
    # A person may type the calling code without "+" ("35799123456" with CYP). Read it that way
    # only if the result is a valid number and the national reading is not, so that a national
    # number which happens to begin with the same digits keeps its meaning.
    prefix = str(calling_code)
    if digits.startswith(prefix) and len(digits) <= MAX_E164_DIGITS:
        as_national = phone_rules.is_valid(calling_code, digits)
        as_international = phone_rules.is_valid(calling_code, digits[len(prefix) :])
        if as_international and not as_national:
            return calling_code, digits[len(prefix) :], requested
    return calling_code, digits, requested


def normalize_phone(
    number: str, country_code: str | None, *, strict: bool = False, sms: bool = False
) -> PhoneNumber:
    """Normalise a phone number as typed to E.164, following API.md section 3 "Register".

    Lenient (default): after removing spaces, dashes, dots and brackets, the number is digits; with
    a `+` or `00` prefix it carries its calling code and `country_code` is optional (the prefix
    wins when they disagree, as the person typed it explicitly); otherwise it is a national
    number of `country_code`, one leading trunk 0 dropped where the country dials one. A trunk
    prefix or mobile token typed where it does not belong ("+357 0 99...", Mexico's old "1"
    after +52) is folded away when only the folded spelling is a valid number (see
    phone_rules.fold_national). The national part has 4 to 14 digits and the whole at most 15.
    `strict=True` also requires phonenumbers.is_valid_number (an application setting).
    `sms=True`, for numbers codes are texted to, applies phone_rules.check_for_sms.
    """
    calling_code, national, requested = _read(number, country_code)
    return _build(calling_code, national, requested, strict=strict, sms=sms)


def phone_e164_and_country(number: str, country_code: str | None) -> tuple[str, str]:
    """`normalize_phone(number, country_code)`'s E.164 form and country, without the display
    form (which costs a contact's phones work they do not use: they store only these two)."""
    calling_code, national, requested = _read(number, country_code)
    e164, alpha3, _, _ = _resolve(calling_code, national, requested, strict=False)
    return e164, alpha3


def parse_phone_credential(value: str) -> str:
    """Return E.164 for a credentials value: "+35799123456", "0035799123456" or "35799123456".

    Credentials carry no separate country, so the value must include its calling code; bare
    digits are read as digits with the calling code, as API.md section 3 "One-time codes" says.
    """
    _, digits = _clean_phone(value)
    calling_code, national = _split_calling_code(digits)
    return _build(calling_code, national, None, strict=False).e164


def _is_valid_e164(e164: str) -> bool:
    calling_code, national = _split_calling_code(e164[1:])
    return phone_rules.is_valid(calling_code, national)


def phone_credential(value: str, default_country: str | None) -> str:
    """E.164 for a phone a client names without a separate country (a code request's value, the
    existence check's `phone` query), read with the application's default country.

    With `+` or `00` the number carries its calling code. Otherwise, without a default country,
    as parse_phone_credential. With one, the first reading that holds: a valid national number
    of the default country ("99773656" with CYP), a valid number with its calling code
    ("35799773656"), then the lenient readings in that order (the calling-code reading first, as
    API.md has always read bare digits).
    """
    international, _digits = _clean_phone(value)
    if international or default_country is None:
        return parse_phone_credential(value)
    readings: list[str] = []
    try:
        readings.append(normalize_phone(value, default_country).e164)
    except InvalidPhone:
        pass
    try:
        with_code = parse_phone_credential(value)
    except InvalidPhone:
        with_code = None
    for candidate in readings:
        if _is_valid_e164(candidate):
            return candidate
    if with_code is not None:
        return with_code
    if readings:
        return readings[0]
    raise InvalidPhone()


def national_number(e164: str) -> str:
    """The national significant number of an E.164 number: "+3579947823" -> "9947823"."""
    return _split_calling_code(e164.lstrip("+"))[1]


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
