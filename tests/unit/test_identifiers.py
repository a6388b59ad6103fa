"""Unit tests for crm.identifiers.core: countries, phone numbers, emails and their masks."""

from __future__ import annotations

from typing import Any

import phonenumbers
import pytest

from crm.errors import (
    AppError,
    InvalidCountry,
    InvalidEmail,
    InvalidPhone,
    MixedScriptDomain,
    PhoneNotForSms,
)
from crm.identifiers.core import (
    Email,
    PhoneNumber,
    normalize_country,
    normalize_email,
    normalize_phone,
    obfuscate_email,
    obfuscate_phone,
    parse_phone_credential,
)
from crm.identifiers.countries import ALPHA2_TO_ALPHA3, ALPHA3_TO_ALPHA2

# --- countries ---


@pytest.mark.parametrize("code", ["CYP", "cyp", " Cyp ", "GBR", "USA", "ALA", "XKX"])
def test_normalize_country_accepts_alpha3_in_any_case(code: str) -> None:
    assert normalize_country(code) == code.strip().upper()


@pytest.mark.parametrize(
    "code", ["CY", "CYPR", "", "XXX", "UK", "EUR", "C1P", "ÇYP", "cyр", None, 357]
)
def test_normalize_country_refuses_anything_but_an_alpha3_code(code: Any) -> None:
    with pytest.raises(InvalidCountry) as caught:
        normalize_country(code)
    assert caught.value.code == "INVALID_COUNTRY_CODE"
    assert caught.value.status_code == 400


def test_country_table_covers_all_249_iso_3166_1_countries() -> None:
    assert len(ALPHA3_TO_ALPHA2) == 250  # 249 ISO-assigned + Kosovo's user-assigned XKX
    assert all(len(a3) == 3 and a3.isupper() for a3 in ALPHA3_TO_ALPHA2)
    assert all(len(a2) == 2 and a2.isupper() for a2 in ALPHA3_TO_ALPHA2.values())
    assert len(set(ALPHA3_TO_ALPHA2.values())) == len(ALPHA3_TO_ALPHA2)
    assert ALPHA2_TO_ALPHA3["CY"] == "CYP"
    assert ALPHA3_TO_ALPHA2["GBR"] == "GB"
    assert ALPHA3_TO_ALPHA2["SSD"] == "SS"  # South Sudan (2011)
    assert ALPHA3_TO_ALPHA2["BES"] == "BQ"  # Bonaire, Sint Eustatius and Saba (2010)


def test_every_phonenumbers_region_but_two_special_ones_maps_to_a_country() -> None:
    unmapped = {r for r in phonenumbers.SUPPORTED_REGIONS if r not in ALPHA2_TO_ALPHA3}
    # Ascension and Tristan da Cunha are parts of SHN in ISO 3166-1.
    assert unmapped == {"AC", "TA"}


# --- phone numbers: the seed and the lenient rules ---


def test_seed_number_registers_as_written() -> None:
    phone = normalize_phone("9947823", "CYP")
    assert phone == PhoneNumber(
        e164="+3579947823", country_code="CYP", national="9947823", display="+357 9947823"
    )


@pytest.mark.parametrize(
    "typed",
    [
        "99 123456",
        "99-123-456",
        "99.123.456",
        "(99) 123456",
        "[99]123456",
        " 99123456 ",
        "99/123456",
    ],
)
def test_separators_are_removed(typed: str) -> None:
    assert normalize_phone(typed, "CYP").e164 == "+35799123456"


@pytest.mark.parametrize("typed", ["+357 99 123456", "00357 99 123456", "+35799123456"])
def test_calling_code_prefix_makes_the_country_optional(typed: str) -> None:
    phone = normalize_phone(typed, None)
    assert phone.e164 == "+35799123456"
    assert phone.country_code == "CYP"
    assert phone.national == "99123456"


def test_explicit_prefix_wins_over_a_different_country() -> None:
    phone = normalize_phone("+44 7700 900123", "CYP")
    assert phone.e164 == "+447700900123"
    assert phone.country_code == "GBR"


def test_one_trunk_zero_is_dropped_where_the_country_dials_one() -> None:
    assert normalize_phone("07700 900123", "GBR").e164 == "+447700900123"
    assert normalize_phone("+44 (0)20 7946 0000", None).e164 == "+442079460000"
    assert normalize_phone("030 123456", "DEU").e164 == "+4930123456"


def test_leading_zero_is_kept_where_it_is_part_of_the_number() -> None:
    phone = normalize_phone("06 1234 5678", "ITA")
    assert phone.e164 == "+390612345678"
    assert phone.national == "0612345678"


def test_us_trunk_prefix_one_is_not_confused_with_a_zero() -> None:
    assert normalize_phone("202-555-0123", "USA").e164 == "+12025550123"


def test_calling_code_typed_without_plus_is_recognised_when_only_that_reading_is_valid() -> None:
    assert normalize_phone("35799123456", "CYP").e164 == "+35799123456"
    # the national reading of a short number starting with the code's digits is kept
    assert normalize_phone("3571234", "CYP").e164 == "+3573571234"


def test_shared_calling_code_resolves_the_country_from_the_number() -> None:
    assert normalize_phone("+1 204 234 5678", None).country_code == "CAN"
    assert normalize_phone("+1 202 555 0123", None).country_code == "USA"
    assert normalize_phone("+7 700 123 4567", None).country_code == "KAZ"


def test_country_of_an_unrecognised_number_with_a_shared_code_follows_the_caller() -> None:
    assert normalize_phone("+1 999 9999", "CAN").country_code == "CAN"
    assert normalize_phone("+1 999 9999", None).country_code == "USA"


def test_kosovo_numbers_file_under_xkx() -> None:
    assert normalize_phone("+383 44 123 456", None).country_code == "XKX"


def test_national_number_length_bounds_are_4_and_14_digits() -> None:
    assert normalize_phone("1234", "CYP").e164 == "+3571234"
    with pytest.raises(InvalidPhone):
        normalize_phone("123", "CYP")
    assert normalize_phone("1" * 12, "CYP").e164 == "+357" + "1" * 12  # 15 digits in all
    with pytest.raises(InvalidPhone):
        normalize_phone("1" * 13, "CYP")  # 16 digits with the calling code
    assert normalize_phone("2" * 14, "USA").e164 == "+1" + "2" * 14
    with pytest.raises(InvalidPhone):
        normalize_phone("2" * 15, "USA")


@pytest.mark.parametrize(
    "typed",
    [
        "99I23456",  # a letter I for a 1
        "1-800-FLOWERS",
        "99123456 ext 2",
        "+357+99123456",
        "99123456+",
        "９９１２３４５６",  # fullwidth digits
        "٩٩١٢٣٤٥٦",  # Arabic-Indic digits
        "99\u200b123456",  # zero-width space
        "99\n123456",
        "",
        "   ",
        "---",
        "+",
        "00",
        "1" * 65,
    ],
)
def test_phones_with_anything_but_digits_and_separators_are_refused(typed: str) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalize_phone(typed, "CYP")
    assert caught.value.code == "INVALID_PHONE"
    assert isinstance(caught.value, AppError)


def test_overlong_international_numbers_are_refused() -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone("+357 1234567890123", None)
    with pytest.raises(InvalidPhone):
        normalize_phone("00" + "4" * 40, None)


def test_unknown_and_non_geographic_calling_codes_are_refused() -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone("+999 1234 5678", None)
    with pytest.raises(InvalidPhone):
        normalize_phone("+800 1234 5678", None)
    with pytest.raises(InvalidPhone):
        normalize_phone("+0 1234 5678", None)


def test_bare_digits_without_a_country_are_refused() -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone("99123456", None)


def test_invalid_country_is_refused_even_with_a_prefixed_number() -> None:
    with pytest.raises(InvalidCountry):
        normalize_phone("+35799123456", "CY")


def test_country_without_a_calling_code_cannot_form_a_number() -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone("123456", "ATA")


def test_non_string_number_is_refused() -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone(35799123456, "CYP")  # type: ignore[arg-type]


def test_strict_mode_refuses_the_short_seed_number_and_accepts_a_real_one() -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone("9947823", "CYP", strict=True)
    assert normalize_phone("99 123456", "CYP", strict=True).e164 == "+35799123456"
    assert normalize_phone("+44 7400 123456", None, strict=True).country_code == "GBR"


# --- phone credentials ---


@pytest.mark.parametrize(
    "value", ["+35799123456", "0035799123456", "35799123456", "+357 99 123 456", "00357-99-123456"]
)
def test_phone_credential_values_parse_to_e164(value: str) -> None:
    assert parse_phone_credential(value) == "+35799123456"


@pytest.mark.parametrize("value", ["99123456x", "", "+999123456", "3", "+35712"])
def test_malformed_phone_credentials_are_refused(value: str) -> None:
    with pytest.raises(InvalidPhone):
        parse_phone_credential(value)


def test_seed_number_credential_matches_its_registration() -> None:
    registered = normalize_phone("9947823", "CYP").e164
    assert parse_phone_credential("3579947823") == registered
    assert parse_phone_credential("+3579947823") == registered


# --- emails ---


def test_email_keeps_display_as_written_and_matches_case_insensitively() -> None:
    email = normalize_email("  Ahmed.Samir@Example.COM ")
    assert email == Email(canonical="ahmed.samir@example.com", display="Ahmed.Samir@Example.COM")
    assert normalize_email("AHMED.SAMIR@example.com").canonical == email.canonical


def test_seed_style_short_address_is_accepted() -> None:
    assert normalize_email("a@b.c").canonical == "a@b.c"


def test_dots_and_plus_tags_are_kept_distinct() -> None:
    assert normalize_email("a.b@gmail.com").canonical != normalize_email("ab@gmail.com").canonical
    assert normalize_email("ab+x@gmail.com").canonical == "ab+x@gmail.com"


def test_unicode_local_part_is_nfc_normalised_and_case_folded() -> None:
    composed = normalize_email("José@example.com")
    decomposed = normalize_email("Jose\u0301@example.com")
    assert composed.canonical == decomposed.canonical == "josé@example.com"
    assert decomposed.display == "José@example.com"


def test_fullwidth_lookalike_shares_the_key_of_its_ascii_twin() -> None:
    assert normalize_email("ａｄｍｉｎ@example.com").canonical == "admin@example.com"


def test_idna_domain_in_either_spelling_gives_one_key() -> None:
    unicode_form = normalize_email("user@Bücher.de")
    ascii_form = normalize_email("user@xn--bcher-kva.de")
    assert unicode_form.canonical == ascii_form.canonical == "user@bücher.de"


@pytest.mark.parametrize(
    "address",
    [
        "a\u200b@example.com",  # zero-width space
        "a@exa\u200bmple.com",
        "\u200dadmin@example.com",  # zero-width joiner
        "\u202eadmin@example.com",  # right-to-left override
        "admin\u2066@example.com",  # left-to-right isolate
        "\ufeffadmin@example.com",  # byte order mark
        "ad\u00admin@example.com",  # soft hyphen
        "ad\x00min@example.com",
        "admin@example.com\r\nBcc: x@evil.test",
        "ad min@example.com",
        "admin@exa\u2028mple.com",
    ],
)
def test_invisible_control_and_bidi_characters_are_refused(address: str) -> None:
    with pytest.raises(InvalidEmail) as caught:
        normalize_email(address)
    assert caught.value.code == "INVALID_EMAIL"


@pytest.mark.parametrize(
    "address",
    [
        "",
        "   ",
        "plainaddress",
        "@example.com",
        "a@",
        "a@@example.com",
        "a@localhost",
        "a..b@example.com",
        ".a@example.com",
        "a@example..com",
        '"quoted"@example.com',
        "a@[127.0.0.1]",
        "a@-example.com",
    ],
)
def test_malformed_addresses_are_refused(address: str) -> None:
    with pytest.raises(InvalidEmail):
        normalize_email(address)


def test_address_of_254_characters_is_accepted_and_255_refused() -> None:
    domain = ".".join(["a" * 60] * 3) + ".com"  # 187 characters
    ok = "b" * (254 - 1 - len(domain)) + "@" + domain
    assert len(ok) == 254
    assert normalize_email(ok).display == ok
    with pytest.raises(InvalidEmail):
        normalize_email("b" + ok)


def test_non_string_email_is_refused() -> None:
    with pytest.raises(InvalidEmail):
        normalize_email(None)  # type: ignore[arg-type]


# --- masks ---


def test_obfuscate_phone_matches_the_api_example() -> None:
    assert obfuscate_phone("+3579947823") == "+357994***23"


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+35799123456", "+357991***56"),
        ("+447700900123", "+44770***23"),
        ("+12025550123", "+1202***23"),
        ("+3571234", "+357***34"),
        ("+35712345", "+3571***45"),
    ],
)
def test_obfuscate_phone_keeps_calling_code_and_hides_at_least_two_digits(
    e164: str, masked: str
) -> None:
    assert obfuscate_phone(e164) == masked
    national = normalize_phone(e164, None).national
    shown = masked.replace("***", "")[len(e164) - len(national) :]
    assert len(national) - len(shown) >= 2


@pytest.mark.parametrize("value", ["3579947823", "+357 9947823", "+３５７9947823", "", "+"])
def test_obfuscate_phone_refuses_non_e164_input(value: str) -> None:
    with pytest.raises(InvalidPhone):
        obfuscate_phone(value)


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("ahmed.samir@example.com", "ah***@example.com"),
        ("abc@example.com", "a***@example.com"),
        ("ab@example.com", "a***@example.com"),
        ("a@example.com", "***@example.com"),
    ],
)
def test_obfuscate_email_hides_most_of_the_local_part_and_keeps_the_domain(
    address: str, masked: str
) -> None:
    assert obfuscate_email(address) == masked


def test_obfuscate_email_refuses_a_value_without_a_local_part() -> None:
    with pytest.raises(InvalidEmail):
        obfuscate_email("example.com")
    with pytest.raises(InvalidEmail):
        obfuscate_email("@example.com")


# --- one identifier, one person: emails ---


def test_sharp_s_domain_and_ss_domain_are_different_identities() -> None:
    # IDNA 2008 non-transitional: faß.de (xn--fa-hia.de) and fass.de are different domains.
    assert normalize_email("x@faß.de").canonical == "x@faß.de"
    assert normalize_email("x@FASS.de").canonical == "x@fass.de"
    assert normalize_email("x@xn--fa-hia.de").canonical == "x@faß.de"
    assert normalize_email("x@faẞ.de").canonical == "x@faß.de"  # capital sharp s


def test_final_sigma_domain_is_kept_apart_from_sigma() -> None:
    assert normalize_email("x@σς.gr").canonical != normalize_email("x@σσ.gr").canonical


def test_local_part_is_lower_cased_not_case_folded() -> None:
    assert normalize_email("Straße@example.com").canonical == "straße@example.com"
    assert normalize_email("Strasse@example.com").canonical == "strasse@example.com"


@pytest.mark.parametrize(
    "address",
    [
        "x@ex\u0430mple.com",  # Cyrillic a
        "x@p\u0430ypal.com",
        "x@\u0441\u0430t.example.com",  # Cyrillic s and a, Latin t
        "x@xn--exmple-4nf.com",  # the same lookalike in its A-label form
        "x@g\u03bfogle.com",  # Greek omicron
    ],
)
def test_domains_whose_labels_mix_scripts_are_refused(address: str) -> None:
    with pytest.raises(MixedScriptDomain) as caught:
        normalize_email(address)
    assert caught.value.code == "EMAIL_DOMAIN_MIXED_SCRIPTS"
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    "address",
    [
        "x@пример.рф",  # all Cyrillic
        "x@ελληνικά.gr",
        "x@日本語.jp",
        "x@ひらがな漢字.jp",  # Japanese mixes Han and Hiragana
        "x@中文ㄅ.tw",  # Han with Bopomofo
        "x@한국어漢字.kr",  # Hangul with Han
        "x@bücher-2024.de",
        "x@shop.\u0440\u0444",  # one script per label, different labels
    ],
)
def test_single_script_and_cjk_labels_are_accepted(address: str) -> None:
    normalize_email(address)


@pytest.mark.parametrize("tld", ["test", "example", "invalid", "localhost", "TEST"])
def test_reserved_test_domains_are_accepted_in_test_mode_only(tld: str) -> None:
    address = f"Someone@shop.{tld}"
    assert normalize_email(address, test_mode=True).canonical == f"someone@shop.{tld.lower()}"
    with pytest.raises(InvalidEmail) as caught:
        normalize_email(address)
    assert "special-use or reserved name" in caught.value.message


@pytest.mark.parametrize("address", ["x@a.local", "x@a.onion", "x@b.in-addr.arpa", "x@localhost"])
def test_other_special_use_names_are_refused_in_test_mode_too(address: str) -> None:
    with pytest.raises(InvalidEmail):
        normalize_email(address, test_mode=True)


def test_test_mode_still_checks_the_syntax_of_a_test_address() -> None:
    with pytest.raises(InvalidEmail):
        normalize_email("a..b@shop.test", test_mode=True)
    with pytest.raises(InvalidEmail):
        normalize_email("a@-shop.example", test_mode=True)


def test_obfuscated_email_shows_a_non_ascii_domain_in_punycode() -> None:
    assert obfuscate_email("ahmed@ex\u0430mple.com") == "ah***@xn--exmple-4nf.com"
    assert obfuscate_email("ab@faß.de") == "a***@xn--fa-hia.de"
    assert obfuscate_email("ab@fass.de") == "a***@fass.de"


# --- one identifier, one person: phones ---


@pytest.mark.parametrize(
    ("typed", "country", "e164"),
    [
        ("+357 099 123456", None, "+35799123456"),
        ("099123456", "CYP", "+35799123456"),
        ("+52 1 55 1234 5678", None, "+525512345678"),
        ("+5215512345678", None, "+525512345678"),
        ("044 55 1234 5678", "MEX", "+525512345678"),
        ("+1 1 202 555 0123", None, "+12025550123"),
        ("+7 8 912 345 6789", None, "+79123456789"),
        ("011 15 2345 6789", "ARG", "+5491123456789"),
        ("+54 11 15 2345 6789", None, "+5491123456789"),
        ("+33 0 6 12 34 56 78", None, "+33612345678"),
    ],
)
def test_trunk_prefixes_and_mobile_tokens_fold_into_one_identity(
    typed: str, country: str | None, e164: str
) -> None:
    assert normalize_phone(typed, country).e164 == e164
    assert normalize_phone(e164, None).e164 == e164


def test_credentials_fold_like_registrations() -> None:
    assert parse_phone_credential("+357099123456") == "+35799123456"
    assert parse_phone_credential("5215512345678") == "+525512345678"


def test_a_valid_number_is_never_folded_into_another() -> None:
    # Italy keeps its leading 0; Argentina's fixed line and mobile spellings are both valid.
    assert normalize_phone("+39 06 1234 5678", None).e164 == "+390612345678"
    assert normalize_phone("+54 11 2345 6789", None).e164 == "+541123456789"


@pytest.mark.parametrize("typed", ["+449012345678", "+1900555012", "+19005550123", "+34901123456"])
def test_premium_rate_and_shared_cost_numbers_are_refused_for_sms(typed: str) -> None:
    for strict in (False, True):
        with pytest.raises(PhoneNotForSms) as caught:
            normalize_phone(typed, None, strict=strict, sms=True)
        assert caught.value.code == "PHONE_NUMBER_NOT_FOR_SMS"
        assert caught.value.status_code == 400
    normalize_phone(typed, None)  # still a number, e.g. on a contact's profile


@pytest.mark.parametrize(
    ("typed", "country"),
    [("+357 1234", None), ("1" * 12, "CYP"), ("+1 999 9999", "CAN"), ("2" * 14, "USA")],
)
def test_numbers_of_impossible_length_are_refused_for_sms(typed: str, country: str | None) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalize_phone(typed, country, sms=True)
    assert caught.value.code == "INVALID_PHONE"


def test_lenient_sms_mode_keeps_the_seed_short_test_numbers() -> None:
    assert normalize_phone("9947823", "CYP", sms=True).e164 == "+3579947823"
    assert normalize_phone("+357 99 123456", None, sms=True).e164 == "+35799123456"
    # A number of a possible length in a range the metadata does not know yet.
    assert normalize_phone("+44 7700 900123", None, sms=True).e164 == "+447700900123"
    with pytest.raises(InvalidPhone):
        normalize_phone("9947823", "CYP", strict=True, sms=True)
