"""The country rules a phone identity follows: folded trunk prefixes and mobile tokens, SMS fitness."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import phonenumbers
from phonenumbers import PhoneNumberType, ValidationResult

from crm.errors import InvalidPhone, PhoneNotForSms

# Numbers whose texts are charged to the sender at a premium: the target of SMS pumping.
_NOT_FOR_SMS: Final = frozenset({PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST})
# Ranges a short test number may begin with (the seed's 7-digit Cypriot 9947823 is a
# truncated mobile number).
_SUBSCRIBER_TYPES: Final = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
)
# Mexico dropped its mobile "1" (after +52) and the national prefixes 01, 044 and 045 in 2019;
# people and old address books still write them, and each spelling reaches the same handset.
_MEXICO: Final = 52
_MEXICO_OLD_PREFIXES: Final = ("044", "045", "01")


def _parse(calling_code: int, national: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(f"+{calling_code}{national}", None)
    except phonenumbers.NumberParseException:
        return None


def _valid_parsed(calling_code: int, national: str) -> tuple[str, phonenumbers.PhoneNumber] | None:
    """The national significant number +calling_code national means and the parsed number, if
    valid; else None.

    phonenumbers itself drops a trunk prefix or rewrites a mobile token that an international
    spelling carries ("+1 1 202...", "+54 11 15...") when only that reading is valid.
    """
    parsed = _parse(calling_code, national)
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        return None
    return str(phonenumbers.national_significant_number(parsed)), parsed


def _valid_national(calling_code: int, national: str) -> str | None:
    """The national significant number +calling_code national means, if valid; else None."""
    found = _valid_parsed(calling_code, national)
    return None if found is None else found[0]


def is_valid(calling_code: int, national: str) -> bool:
    """Whether +calling_code national is a valid number by the numbering plan's metadata."""
    return _valid_national(calling_code, national) is not None


def _fold_candidates(calling_code: int, national: str, region: str) -> Iterator[str]:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefix = metadata.national_prefix if metadata is not None else None
    if prefix and national.startswith(prefix):
        yield national[len(prefix) :]
    if national.startswith("0"):
        yield national[1:]
    # The country's own national-format rules (trunk prefixes, and mobile tokens such as
    # Argentina's "15" becoming "9").
    try:
        as_national = phonenumbers.parse(national, region)
    except phonenumbers.NumberParseException:
        as_national = None
    if as_national is not None and as_national.country_code == calling_code:
        yield str(phonenumbers.national_significant_number(as_national))
    if calling_code == _MEXICO:
        if national.startswith("1") and len(national) == 11:
            yield national[1:]
        for old in _MEXICO_OLD_PREFIXES:
            if national.startswith(old):
                yield national[len(old) :]


def fold_national(calling_code: int, national: str, region: str) -> str:
    """Return `national` with a typed trunk prefix or mobile token removed, if one was typed.

    "+357 099123456" and "+35799123456", "+52 1 55 1234 5678" and "+52 55 1234 5678" reach one
    handset and must be one identity. A spelling is folded only when it is not a valid number
    itself and the folded one is, so no valid number is ever rewritten into another.
    """
    return fold_national_parsed(calling_code, national, region)[0]


def fold_national_parsed(
    calling_code: int, national: str, region: str
) -> tuple[str, phonenumbers.PhoneNumber | None]:
    """`fold_national`, with `phonenumbers.parse` of "+calling_code<the result>" when one was
    made on the way (None otherwise), so the caller need not parse the same text again.

    The parse is handed back only when the text parsed is exactly "+calling_code<the result>":
    phonenumbers.parse is a pure function of its text, so the caller's own parse would give an
    equal number.
    """
    found = _valid_parsed(calling_code, national)
    if found is None:
        for candidate in _fold_candidates(calling_code, national, region):
            found = _valid_parsed(calling_code, candidate) if candidate else None
            if found is not None:
                national = candidate
                break
        else:
            return national, None
    valid, parsed = found
    # `national` is now the text that was parsed (after "+calling_code").
    return valid, parsed if valid == national else None


def _completion_types(parsed: phonenumbers.PhoneNumber, region: str) -> set[int]:
    """The types of the valid numbers that a too-short number is the beginning of."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.general_desc is None:
        return set()
    digits = str(phonenumbers.national_significant_number(parsed))
    calling_code = int(parsed.country_code or 0)
    types: set[int] = set()
    # Bounded: at most a few possible lengths times ten fill digits.
    for length in sorted(metadata.general_desc.possible_length or ())[:4]:
        if length <= len(digits):
            continue
        for fill in "0123456789":
            candidate = _parse(calling_code, digits + fill * (length - len(digits)))
            if candidate is not None and phonenumbers.is_valid_number(candidate):
                types.add(phonenumbers.number_type(candidate))
    return types


def check_for_sms(e164: str, region: str, *, strict: bool) -> None:
    """Raise unless codes may be texted to `e164`, a number filed under `region` (alpha-2).

    Refused always: premium-rate and shared-cost numbers (PHONE_NUMBER_NOT_FOR_SMS), and
    numbers too long or of a length the country never uses (INVALID_PHONE). A number shorter
    than its country's numbers is accepted only in lenient mode and only when it begins like a
    mobile or fixed-line number (the seed's short test numbers); a number of a possible length
    whose range the metadata does not know is accepted in lenient mode (new ranges open before
    the metadata catches up). Strict mode requires a valid number.
    """
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone() from exc
    if phonenumbers.number_type(parsed) in _NOT_FOR_SMS:
        raise PhoneNotForSms()
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason in (ValidationResult.TOO_LONG, ValidationResult.INVALID_LENGTH):
        raise InvalidPhone("The number has a length its country does not use.")
    if reason in (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        types = _completion_types(parsed, region)
        if types and types <= _NOT_FOR_SMS:
            raise PhoneNotForSms()
        if strict or not types & _SUBSCRIBER_TYPES:
            raise InvalidPhone("The number is too short for its country.")
