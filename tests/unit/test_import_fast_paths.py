"""The import's fast paths give what the paths they stand for give, over inputs chosen to trip them.

- phones: the folding hands its parse to the E.164 step instead of parsing the same text again;
  the reference is the folding as it was (below) with the second parse.
- emails: plain ASCII addresses skip email-validator once their domain is known; the reference is
  crm.identifiers.emails.normalize_email.
- contact rows: a plain dict instead of the ORM builder; the reference is
  import_rows.contact_values(service.build_contact(...)).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from typing import Any

import phonenumbers
import pytest

from crm.contacts import import_rows, normalise, service
from crm.contacts.schemas import ContactCreate
from crm.errors import AppError
from crm.identifiers import core, phone_rules
from crm.identifiers.countries import ALPHA2_TO_ALPHA3
from crm.identifiers.emails import normalize_email


def _outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return ("ok", call(*args, **kwargs))
    except AppError as exc:
        return ("error", type(exc).__name__, exc.code, exc.message)


# --- phones -------------------------------------------------------------------------------


def _old_fold_national(calling_code: int, national: str, region: str) -> str:
    """phone_rules.fold_national before the fast path, verbatim."""
    valid = phone_rules._valid_national(calling_code, national)
    if valid is not None:
        return valid
    for candidate in phone_rules._fold_candidates(calling_code, national, region):
        valid = phone_rules._valid_national(calling_code, candidate) if candidate else None
        if valid is not None:
            return valid
    return national


_REGIONS = ["CY", "GB", "US", "CA", "MX", "AR", "IT", "DE", "FR", "RU", "KZ", "IN", "BR", "CN"]
_REGIONS += ["JP", "AU", "NL", "GR", "TR", "EG", "NG", "SG", "HK", "AE", "SM", "VA", "GG", "JE"]
_TYPES = [
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.PREMIUM_RATE,
]
_FIXED_PHONES: list[tuple[str, str | None]] = [
    ("99123456", "CYP"),
    ("99 123-456", "cyp"),
    ("+357 99 123456", None),
    ("+357 0 99123456", None),
    ("+3570 99123456", "CYP"),
    ("0035799123456", None),
    ("35799123456", "CYP"),
    ("3571234", "CYP"),
    ("9947823", "CYP"),
    ("+44 (0)20 7946 0000", None),
    ("07700 900123", "GBR"),
    ("+44 7700 900123", "CYP"),
    ("202-555-0123", "USA"),
    ("1 202 555 0123", "USA"),
    ("+1 1 202 555 0123", None),
    ("+52 1 55 1234 5678", None),
    ("+52 55 1234 5678", None),
    ("044 55 1234 5678", "MEX"),
    ("045 55 1234 5678", "MEX"),
    ("01 55 1234 5678", "MEX"),
    ("011 15 2345 6789", "ARG"),
    ("+54 9 11 2345 6789", None),
    ("+54 11 15 2345 6789", None),
    ("06 1234 5678", "ITA"),
    ("+39 06 1234 5678", None),
    ("030 123456", "DEU"),
    ("8 912 345 6789", "RUS"),
    ("+7 912 345 6789", "KAZ"),
    ("+800 1234 5678", None),
    ("+882 1234 5678", None),
    ("+0 123", None),
    ("+", None),
    ("", "CYP"),
    ("   ", "CYP"),
    ("1-800-FLOWERS", "USA"),
    ("\uff19\uff19123456", "CYP"),
    ("99123456", None),
    ("99123456", "XXX"),
    ("99123456", "ATA"),
    ("9" * 20, "CYP"),
    ("+" + "9" * 16, None),
    ("1" * 70, "USA"),
    ("+357\t99\u00a0123 456", None),
    ("(99) [123].456/", "CYP"),
    ("++35799123456", None),
    ("99+123456", "CYP"),
]


def _phone_corpus() -> Iterator[tuple[str, str | None]]:
    yield from _FIXED_PHONES
    fmt = phonenumbers.PhoneNumberFormat
    for region in _REGIONS:
        alpha3 = ALPHA2_TO_ALPHA3[region]
        code = phonenumbers.country_code_for_region(region)
        for kind in _TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            national = phonenumbers.national_significant_number(example)
            spellings = [
                phonenumbers.format_number(example, fmt.E164),
                phonenumbers.format_number(example, fmt.INTERNATIONAL),
                phonenumbers.format_number(example, fmt.NATIONAL),
                national,
                f"00{code}{national}",
                f"{code}{national}",
                f"+{code}0{national}",
                f"+{code} {national[:-1]}",
                f"+{code}{national}9",
                f"0{national}",
            ]
            for spelling in spellings:
                yield spelling, None
                yield spelling, alpha3
                yield spelling, "CYP" if alpha3 != "CYP" else "GBR"
    rng = random.Random(7)
    for _ in range(400):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 16)))
        prefix = rng.choice(["", "+", "00", "+357", "+52", "+54", "+1", "0"])
        yield prefix + digits, rng.choice([None, "CYP", "MEX", "ARG", "USA", "GBR", "ITA"])


@pytest.mark.parametrize("strict", [False, True])
def test_phone_fast_path_gives_the_old_results(
    strict: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = list(dict.fromkeys(_phone_corpus()))
    assert len(corpus) > 1000
    fast = [_outcome(core.normalize_phone, n, c, strict=strict) for n, c in corpus]
    keys = [_outcome(core.phone_e164_and_country, n, c) for n, c in corpus]
    monkeypatch.setattr(
        phone_rules,
        "fold_national_parsed",
        lambda code, national, region: (_old_fold_national(code, national, region), None),
    )
    old = [_outcome(core.normalize_phone, n, c, strict=strict) for n, c in corpus]
    for (number, country), got, want in zip(corpus, fast, old, strict=True):
        assert got == want, (number, country)
    if not strict:
        for (number, country), got, want in zip(corpus, keys, old, strict=True):
            expected = want if want[0] == "error" else ("ok", (want[1].e164, want[1].country_code))
            assert got == expected, (number, country)
    # The corpus reaches both kinds of answer, and the folding.
    assert {o[0] for o in old} == {"ok", "error"}
    assert ("ok", core.normalize_phone("+35799123456", None)) in old


def test_phone_fast_path_gives_the_old_results_for_sms() -> None:
    for number, country in _FIXED_PHONES:
        got = _outcome(core.normalize_phone, number, country, sms=True)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(
                phone_rules,
                "fold_national_parsed",
                lambda code, national, region: (_old_fold_national(code, national, region), None),
            )
            want = _outcome(core.normalize_phone, number, country, sms=True)
        assert got == want, (number, country)


# --- emails -------------------------------------------------------------------------------

_LOCALS = [
    "a",
    "A",
    "Ab.Cd",
    "first.last",
    "o'neil",
    "a+tag",
    "a!#$%&'*+-/=?^_`{|}~z",
    "INFO",
    "Postmaster",
    "a..b",
    ".a",
    "a.",
    "a b",
    "a\tb",
    '"quoted"',
    '"a@b"',
    "a(b)",
    "a,b",
    "a\\b",
    "",
    "x" * 64,
    "X" * 65,
    "x" * 240,
    "\u00fc",
    "u\u0308",
    "\uff41",
    "a\u200bb",
    "\u0130",
    "stra\u00dfe",
]
_DOMAINS = [
    "example.com",
    "EXAMPLE.COM",
    "Example.Com",
    "sub.example.co.uk",
    "b.test",
    "b.example",
    "b.invalid",
    "b.localhost",
    "localhost",
    "b.local",
    "b.onion",
    "x.arpa",
    "example",
    "com",
    "xn--bcher-kva.example",
    "XN--BCHER-KVA.example",
    "xn--zz.com",
    "b\u00fccher.example",
    "ex\u0430mple.com",
    "fa\u00df.de",
    "a-.com",
    "-a.com",
    "a..com",
    ".a.com",
    "a.com.",
    "a_b.com",
    "ex--ample.com",
    "1.2.3.4",
    "[1.2.3.4]",
    "a.123",
    "a.b1",
    ("l" * 63) + ".com",
    ("l" * 64) + ".com",
    ".".join(["abcdefghi"] * 24) + ".com",
    ".".join(["abcdefghi"] * 26) + ".com",
    "",
]
_WRAPS = ["{}", " {} ", "\t{}\n", "\u3000{}", "{}\u200b"]


def _email_corpus() -> Iterator[str]:
    for local in _LOCALS:
        for domain in _DOMAINS:
            yield f"{local}@{domain}"
    for wrap in _WRAPS:
        yield wrap.format("Some.One@Example.com")
    yield from ["plain", "@", "a@@b.com", "a@b@c.com", "Name <a@b.com>", "a@b.com>", "<a@b.com>"]
    rng = random.Random(11)
    alphabet = "aZ09.-+_@ '\"\u00e9\u0430"
    for _ in range(600):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        yield text + rng.choice(["@example.com", "@b.test", "", "@EXAMPLE.org"])


@pytest.mark.parametrize("test_mode", [False, True])
def test_email_fast_path_gives_normalize_email(test_mode: bool) -> None:
    corpus = list(dict.fromkeys(_email_corpus()))
    answers = []
    for value in corpus:
        got = _outcome(normalise._email.__wrapped__, value, test_mode)
        want = _outcome(normalize_email, value, test_mode=test_mode)
        if want[0] == "ok":
            want = ("ok", (want[1].display, want[1].canonical))
        assert got == want, value
        answers.append(got)
    # Both answers, and the fast path itself, are exercised.
    assert {a[0] for a in answers} == {"ok", "error"}
    fast = [v for v in corpus if normalise._plain_email(v, test_mode) is not None]
    assert len(fast) > 50


# --- contact rows -------------------------------------------------------------------------

_BODIES: list[dict[str, Any]] = [
    {"first_name": "Zo\u00eb", "last_name": " M\u00fcller ", "email_address": "Zoe@Example.com"},
    {
        "contact_type": "COMPANY",
        "company_name": "\u00c9cole SARL",
        "title": "Dr",
        "middle_name": "Q",
        "email_address": "x@b\u00fccher.de",
        "phones": [{"number": "+44 (0)20 7946 0000", "phone_type": "LANDLINE"}],
        "addresses": [{"address_line_1": "1 Main St", "country_code": "cyp"}],
        "custom_fields": [{"key": "tier", "value": "gold"}],
        "tags": ["vip", "b"],
        "language_code": "fr",
        "country_of_agreement": "cyp",
        "demographics": {
            "gender": "FEMALE",
            "date_of_birth": {"year": 1990, "month": 5, "day": 17},
        },
        "service_acceptance": True,
        "sms_opt_out": True,
        "email_opt_out": False,
    },
    {"tags": [], "addresses": None, "email_address": None},
    {},
    {"demographics": {"date_of_birth": {"year": 1990, "month": 2, "day": 30}}},
    {"demographics": {"date_of_birth": {"year": 2199, "month": 1, "day": 1}}},
]


@pytest.mark.parametrize("mode", ["live", "test"])
@pytest.mark.parametrize("index", range(len(_BODIES)))
def test_contact_columns_match_the_orm_builder(index: int, mode: str) -> None:
    body = ContactCreate.model_validate({"id": "c-1", "code": "Code-1", **_BODIES[index]})
    fields = service.prepare_new(
        mode=mode,
        fields=body.contact_fields(only_set=False),
        contact_id=body.id,
        code=body.code,
        contact_type=body.contact_type,
    )
    now = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
    args: dict[str, Any] = {
        "tenant_id": "t-1",
        "mode": mode,
        "fields": fields,
        "contact_id": body.id,
        "code": body.code,
        "contact_type": body.contact_type,
        "now": now,
    }
    want = _outcome(lambda: import_rows.contact_values(service.build_contact(**args)))
    # The import's row builder reads the fields as plain values (the importer's call).
    columns = {**args, "fields": fields.as_dict()}
    got = _outcome(lambda: import_rows.contact_columns(**columns))
    assert got == want
    # Generated ids and codes: the same shape, fresh values.
    args.update(contact_id=None, code=None)
    if want[0] == "ok":
        generated = import_rows.contact_columns(**{**args, "fields": fields.as_dict()})
        built = import_rows.contact_values(service.build_contact(**args))
        assert generated.keys() == built.keys()
        assert generated["code_norm"] == generated["code"].casefold()
        assert generated["id"] != want[1]["id"] and generated["code"] != want[1]["code"]
        same = {k for k in built if k not in ("id", "code", "code_norm")}
        assert {k: generated[k] for k in same} == {k: built[k] for k in same}
