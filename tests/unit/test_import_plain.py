"""The plain rows' fast path gives the general path's answer, and the COPY records its rows.

- import_plain.PlainRows.prepare either declines a row or gives the fields, contact columns,
  given id and code and audit names the general path (the API schema, `prepare_new`,
  `contact_columns`) gives, over rows whose cells are chosen to trip it; it never refuses a row.
- import_copy's records hold, column for column, what rows.phone_rows, rows.consent_rows,
  audit.audit_row and events.service.created_event_rows write (ids aside).
- import_ids draws ids and codes of crm.ids' shapes.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from crm.contacts import import_copy, import_ids, import_plain, importer, service
from crm.contacts.contact_fields import or_none
from crm.contacts.import_rows import ContactValues, contact_values
from crm.contacts.models import AuditEvent, ConsentEvent, Contact, ContactPhone
from crm.errors import AppError
from crm.events.models import Event
from crm.events.service import created_event_rows
from crm.ids import short_code, uuid7

NOW = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC)
_TEXTS = [
    "Ann",
    "  Ann  ",
    "o'Neil",
    "Zo\u00eb",
    "Zoe\u0308",
    "\u0130stanbul",
    "stra\u00dfe",
    "\u01c5ab",
    "\u0391\u03bd\u03bd\u03b1",
    "a\u200bb",
    "a\u00a0b",
    "a\tb",
    "a\x7fb",
    "\U0001f600",
    "'=1+1",
    "'",
    "=HYPERLINK()",
    "x" * 40,
    "x" * 41,
    "x" * 200,
    "x" * 201,
    "",
    "   ",
]
_VALUES: dict[str, list[str]] = {
    "id": ["c-1", "c_2", "verify", "a.b", "x" * 36, "x" * 37, "\u00e9", "'c-3", " c-4 "],
    "code": ["C1", "a.b:c-d_e", "verify", "a b", "x" * 36, "x" * 37, "c/d"],
    "contact_type": ["PERSON", "COMPANY", "person", "OTHER"],
    "title": _TEXTS,
    "first_name": _TEXTS,
    "middle_name": _TEXTS[:8],
    "last_name": _TEXTS,
    "company_name": _TEXTS,
    "email_address": [
        "ann@example.com",
        "Ann.Lee@Example.COM",
        " ann@example.com ",
        "ann@b.test",
        "ann@localhost",
        "ann@b\u00fccher.de",
        "\u00fc@example.com",
        "a..b@example.com",
        "'ann@example.com",
        "not-an-email",
        "a@" + "x" * 320,
        "x" * 64 + "@example.com",
    ],
    "language_code": ["en", "EN", "en-GB", "en_gb", "e", "english", "en-", "zh-Hant-TW", "x" * 11],
    "country_of_agreement": ["CYP", "cyp", " GBR ", "CY", "XXX", "\u0131ta", "ABCDEFGHI"],
    "service_acceptance": ["true", "FALSE", "True ", "yes", "1", "'true"],
    "email_opt_out": ["true", "false", "no"],
    "sms_opt_out": ["false", "TRUE", "0"],
    "phone": [
        "99123456",
        "+357 99 123456",
        "0035799123456",
        "35799123456",
        "99 123-456",
        "+44 7700 900123",
        "1-800-FLOWERS",
        "\uff19\uff19123456",
        "123",
        "9" * 65,
        "'+35799123456",
        "+800 1234 5678",
    ],
    "phone_country_code": ["CYP", "cyp", "GBR", "XX", "ABCDEFGHI", "'CYP", ""],
    "password_hash": ["$2b$04$abc", "x" * 70_000],
    "created_date": ["1700000000", "x" * 70_000],
    "notes": ["anything", "=1+1"],
    "tags": ["a;b"],
    "gender": ["female"],
    "date_of_birth": ["1990-05-17"],
    "phones": ['[{"number": "99123456", "country_code": "CYP"}]'],
}
_BASE = {
    "id": "c-1",
    "code": "C1",
    "first_name": "Ann",
    "last_name": "Lee",
    "email_address": "ann.lee@example.com",
    "phone": "99123456",
    "phone_country_code": "CYP",
}


def _rows() -> list[dict[str, str | None]]:
    rows: list[dict[str, str | None]] = [dict(_BASE), {}, {"first_name": None}]
    for name, values in _VALUES.items():
        for value in values:
            rows.append({**_BASE, name: value})
            rows.append({name: value})
    rng = random.Random(5)
    names = list(_VALUES)
    for _ in range(600):
        rows.append({name: rng.choice(_VALUES[name]) for name in rng.sample(names, 6)})
    return rows


def _general(row: dict[str, str | None], mode: str) -> Any:
    try:
        item = importer._prepare(1, row, tenant_id="t-1", mode=mode, now=NOW, rules={})
    except (ValidationError, ValueError, AppError):
        return None
    return item


@pytest.mark.parametrize("mode", ["live", "test"])
def test_plain_rows_get_the_general_answer(mode: str) -> None:
    plain = import_plain.PlainRows(
        tenant_id="t-1",
        mode=mode,
        now=NOW,
        known=importer.KNOWN_COLUMNS,
        max_cell=importer.MAX_CELL,
    )
    taken = 0
    for row in _rows():
        fast = plain.prepare(row)
        if fast is None:
            continue
        taken += 1
        fields, columns, given_id, given_code, audit = fast
        want = _general(row, mode)
        assert want is not None, row  # the fast path never accepts what the general refuses
        assert (given_id, given_code) == (want.given_id, want.given_code), row
        assert fields == want.fields, row
        assert audit == service.created_audit_fields(want.fields), row
        expected = dict(want.contact.__dict__)
        generated = [] if given_id else ["id"]
        generated += [] if given_code else ["code", "code_norm"]
        for name in generated:
            assert columns[name] != expected.pop(name)
            columns.pop(name)
        assert columns.keys() - set(generated) == expected.keys()
        assert columns == expected, row
    # The corpus reaches the fast path often, and declines often.
    assert 200 < taken < len(_rows()) - 200


def test_plain_rows_columns_are_their_own() -> None:
    # No two rows share a mutable value (a list changed on one must not change another).
    plain = import_plain.PlainRows(
        tenant_id="t-1",
        mode="live",
        now=NOW,
        known=importer.KNOWN_COLUMNS,
        max_cell=importer.MAX_CELL,
    )
    first, second = plain.prepare(_BASE), plain.prepare({**_BASE, "id": "c-2", "code": "C2"})
    assert first is not None and second is not None
    for name, value in first[1].items():
        if isinstance(value, list):
            assert value is not second[1][name], name
    for name, value in first[0].given():
        if isinstance(value, list):
            assert value is not getattr(second[0], name), name


def test_drawn_ids_have_the_shapes_of_crm_ids() -> None:
    before = uuid.UUID(uuid7()).int >> 80
    ids = import_ids.uuid7_batch(2000)
    assert len(set(ids)) == 2000
    for value in ids:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert parsed.int >> 80 >= before  # the millisecond, in the leading 48 bits
    # Every random position varies (74 random bits: none stuck).
    ints = [uuid.UUID(v).int for v in ids]
    varying = 0
    for bit in range(80):
        varying += len({(i >> bit) & 1 for i in ints}) == 2
    assert varying == 74
    pattern = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{6}")
    assert pattern.fullmatch(short_code())
    codes = import_ids.short_codes(2000)
    assert len(set(codes)) == 2000 and all(pattern.fullmatch(c) for c in codes)
    assert set("".join(codes).replace("-", "")) == set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    pool = import_ids.IdPool(block=3)
    assert len({pool.uuid7() for _ in range(7)}) == 7 and len({pool.code() for _ in range(7)}) == 7


class _Session:
    def __init__(self) -> None:
        self.info: dict[str, Any] = {}


def _prepared(mode: str) -> list[importer.Prepared]:
    rows: list[dict[str, str | None]] = [
        dict(_BASE),
        {"first_name": "Bo", "service_acceptance": "true", "sms_opt_out": "false"},
        {**_BASE, "id": "c-2", "code": "a.b:c", "phone": "", "email_address": ""},
        {
            "id": "c-3",
            "phones": '[{"number": "99123457", "country_code": "CYP"}, '
            '{"number": "+44 7700 900123", "phone_type": "LANDLINE", "is_primary": true}]',
            "tags": "a;b",
            "gender": "female",
        },
    ]
    result, batch = importer.prepare_batch(
        rows_with_lines(rows), tenant_id="t-1", mode=mode, now=NOW, rules={}
    )
    assert not result.rejected
    for pk, item in enumerate(batch.rows, start=10):
        item.contact.pk = pk
    return batch.rows


def rows_with_lines(rows: list[dict[str, str | None]]) -> list[tuple[int, dict[str, str | None]]]:
    return list(enumerate(rows, start=2))


def _by_columns(columns: list[str], record: Any) -> dict[str, Any]:
    assert len(record) == len(columns)
    return dict(zip(columns, record, strict=True))


def _without_id(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "id"}


@pytest.mark.parametrize("mode", ["live", "test"])
def test_copy_records_hold_the_general_rows(mode: str) -> None:
    prepared = _prepared(mode)
    tables = {
        "contacts": (import_copy.CONTACT_COLUMNS, Contact),
        "phones": (import_copy.PHONE_COLUMNS, ContactPhone),
        "consents": (import_copy.CONSENT_COLUMNS, ConsentEvent),
        "audits": (import_copy.AUDIT_COLUMNS, AuditEvent),
        "events": (import_copy.EVENT_COLUMNS, Event),
    }
    for columns, model in tables.values():
        assert columns == [c.key for c in model.__table__.columns]
    contacts = import_copy.contact_records(prepared, [p.contact.pk for p in prepared])
    for item, record in zip(prepared, contacts, strict=True):
        got = _by_columns(import_copy.CONTACT_COLUMNS, record)
        want = {"pk": item.contact.pk, **contact_values(item.contact)}
        for name in ("addresses", "custom_fields", "tags", "sub_industries", "loyalty_identifiers"):
            got[name] = json.loads(got[name])
        assert got == want
    phones, history, audits, events = import_copy.created_records(
        prepared, now=NOW, actor="cli", source=importer.SOURCE
    )
    want_phones, want_history, want_audits = [], [], []
    for item in prepared:
        contact, fields = item.contact, item.fields
        want_phones += service.phone_rows(contact, or_none(fields.phones) or [])
        want_history += service.consent_rows(
            contact, service.created_consent(fields), importer.SOURCE, NOW
        )
        want_audits.append(
            service.audit_row(contact, "CREATED", "cli", service.created_audit_fields(fields), NOW)
        )
    want_events = created_event_rows(
        _Session(), [cast_contact(p.contact) for p in prepared], actor="cli", now=NOW
    )
    for got_records, columns, want_rows, json_columns in (
        (phones, import_copy.PHONE_COLUMNS, want_phones, ()),
        (history, import_copy.CONSENT_COLUMNS, want_history, ()),
        (audits, import_copy.AUDIT_COLUMNS, want_audits, ("fields",)),
        (events, import_copy.EVENT_COLUMNS, want_events, ("data",)),
    ):
        assert len(got_records) == len(want_rows) > 0
        for record, want in zip(got_records, want_rows, strict=True):
            got = _by_columns(columns, record)
            uuid.UUID(got["id"])
            for name in json_columns:
                got[name] = json.loads(got[name])
            assert _without_id(got) == _without_id(want)
    # Ids are not shared between the tables.
    ids = [r[0] for table in (phones, history, audits, events) for r in table]
    assert len(set(ids)) == len(ids)


def test_event_data_of_an_unusual_code_is_escaped() -> None:
    item = _prepared("live")[0]
    item.contact.code = 'odd "code"\\'
    *_, events = import_copy.created_records([item], now=NOW, actor='a"b', source="IMPORT")
    data = json.loads(events[0][import_copy.EVENT_COLUMNS.index("data")])
    assert data == {"contact": {"id": item.contact.id, "code": 'odd "code"\\'}, "actor": 'a"b'}


def cast_contact(contact: Contact) -> Any:
    assert isinstance(contact, ContactValues)
    return contact
