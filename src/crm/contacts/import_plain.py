"""The import's fast path for plain rows: the API's answer without the API schema's machinery.

Nearly every row of a bulk import is plain: an id and code, names, an email and a phone, maybe
a language, a country and consent flags, each a short printable value. For such a row the
general path (the API schema, `contact_fields`, `prepare_new`, `contact_columns`) spends most
of its time on fields the row does not have. Here each cell is checked against the exact rule
the general path applies to it, and the row's fields and contact columns are those of an empty
row with the given values put in. A cell outside these rules (a JSON column, a leading `'`, a
value that is not printable or not in NFC, a value the rule refuses, a field the general path
would reject) sends the row to the general path, which gives the answer and the error message:
the fast path never refuses a row itself. tests/unit/test_import_plain.py compares the two over
rows chosen to trip it.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from crm.contacts import service
from crm.contacts.contact_fields import ContactFields
from crm.contacts.import_ids import IdPool
from crm.contacts.import_rows import contact_columns
from crm.contacts.normalise import PHONES, _email
from crm.contacts.schemas import ContactCreate
from crm.errors import AppError
from crm.identifiers.core import normalize_country, phone_e164_and_country

# Free-text columns and the schema's length limit of each (Text40, Text200).
_TEXT = {"title": 40, "first_name": 200, "middle_name": 200, "last_name": 200, "company_name": 200}
# The schema's limits on the other plain values (EmailText, CountryText, RefText, PhoneIn).
_MAX_EMAIL = 320
_MAX_COUNTRY = 8
_MAX_NUMBER = 64
_MAX_LANGUAGE = 10
# schemas.LanguageCode's pattern (anchored by fullmatch; the values here are stripped).
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?")
# Known columns the general path reads only to refuse an over-long cell (row_to_body's
# MAX_CELL); their length is checked against the same limit here.
_LENGTH_ONLY = frozenset({"created_date", "updated_date", "password_hash", "phone_country_code"})
_HANDLED = frozenset(
    {
        *_TEXT,
        "id",
        "code",
        "contact_type",
        "email_address",
        "language_code",
        "country_of_agreement",
        "phone",
        *service.CONSENT_FLAGS,
    }
)
# The columns whose search form is kept beside them.
_NORMALISED = dict(service._NORMALISED)
_LIST_COLUMNS = ("addresses", "custom_fields", "tags", "sub_industries", "loyalty_identifiers")


class NotPlain(Exception):
    """The row needs the general path."""


@functools.lru_cache(maxsize=8)
def _empty_fields(mode: str) -> dict[str, Any]:
    """What the general path makes of a row without values (every field absent), by name: a
    row's values go into a copy, and the fields are built from it once, at the end."""
    body = ContactCreate.model_validate({})
    return service.prepare_new(
        mode=mode,
        fields=body.contact_fields(only_set=False),
        contact_id=None,
        code=None,
        contact_type=body.contact_type,
    ).as_dict()


def _text(value: str, limit: int) -> str:
    """The schema's clean_text for a stripped cell, or NotPlain when it might change it.

    Printable text (no character of the categories clean_text refuses: they are all Other or
    Separator, which isprintable() excludes) that is already in NFC and stripped is what
    clean_text returns unchanged.
    """
    if len(value) > limit or not value.isprintable():
        raise NotPlain
    if not value.isascii() and not unicodedata.is_normalized("NFC", value):
        raise NotPlain
    return value


def _search_form(value: str) -> str | None:
    # For ASCII, NFKD and dropping combining marks change nothing and casefold() is lower().
    return value.lower() if value.isascii() else service.search_form(value)


class PlainRows:
    """The fields and contact columns of a batch's plain rows (one instance per batch)."""

    def __init__(
        self,
        *,
        tenant_id: str,
        mode: str,
        now: dt.datetime,
        known: frozenset[str],
        max_cell: int,
    ) -> None:
        """`known` and `max_cell` are the general path's (importer.KNOWN_COLUMNS, MAX_CELL)."""
        self._test = mode == "test"
        self._known = known
        self._max_cell = max_cell
        self._fields = _empty_fields(mode)
        self._columns = contact_columns(
            tenant_id=tenant_id,
            mode=mode,
            fields=self._fields,
            contact_id="-",
            code="-",
            contact_type="PERSON",
            now=now,
        )
        self._ids = IdPool()
        self._audit: dict[tuple[str, ...], list[str]] = {}

    def prepare(
        self, row: Mapping[str, str | None]
    ) -> tuple[ContactFields, dict[str, Any], str | None, str | None, list[str]] | None:
        """(fields, contact columns, given id, given code, audit field names), or None when the
        row needs the general path."""
        try:
            return self._prepare(row)
        except (NotPlain, AppError):
            return None

    def _prepare(
        self, row: Mapping[str, str | None]
    ) -> tuple[ContactFields, dict[str, Any], str | None, str | None, list[str]]:
        given: dict[str, str] = {}
        for name, raw in row.items():
            if raw is None or name not in self._known:
                continue
            value = raw.strip()
            if not value:
                continue
            if name in _HANDLED:
                if value[0] == "'":
                    raise NotPlain  # export's formula escape: the general path takes it off
                given[name] = value
            elif name not in _LENGTH_ONLY or len(value) > self._max_cell:
                raise NotPlain  # a JSON or demographics column, or an over-long cell
        fields = dict(self._fields)
        columns = dict(self._columns)
        for name in _LIST_COLUMNS:
            columns[name] = []
        for name in ("sub_industries", "loyalty_identifiers"):
            fields[name] = []
        contact_id = given.pop("id", None)
        code = given.pop("code", None)
        contact_type = given.pop("contact_type", "PERSON")
        if contact_id is not None:
            service.check_contact_id(contact_id)
        if code is not None:
            service.check_contact_code(code)
        if contact_type not in service.CONTACT_TYPES:
            raise NotPlain
        number = given.pop("phone", None)
        present: list[str] = []
        for name, value in given.items():
            if name in _TEXT:
                value = _text(value, _TEXT[name])
                fields[name] = columns[name] = value
                if name in _NORMALISED:
                    columns[_NORMALISED[name]] = _search_form(value)
            elif name == "email_address":
                if len(value) > _MAX_EMAIL:
                    raise NotPlain
                display, canonical = _email.__wrapped__(value, self._test)
                fields[name] = columns[name] = display
                columns["email_canonical"] = canonical
            elif name == "language_code":
                if len(value) > _MAX_LANGUAGE or not _LANGUAGE.fullmatch(value):
                    raise NotPlain
                fields[name] = columns[name] = value
            elif name == "country_of_agreement":
                if len(value) > _MAX_COUNTRY:
                    raise NotPlain
                fields[name] = columns[name] = normalize_country(value)
            else:  # a consent flag, as schemas.WireBool reads it
                flag = value.lower()
                if flag not in ("true", "false"):
                    raise NotPlain
                fields[name] = columns[name] = flag == "true"
            present.append(name)
        if number is not None:
            fields[PHONES] = [self._phone(number, row.get("phone_country_code"))]
            present.append(PHONES)
        if contact_type == "COMPANY" and not fields.get("company_name"):
            raise NotPlain
        columns["contact_type"] = contact_type
        columns["id"] = contact_id or self._ids.uuid7()
        columns["code"] = code or self._ids.code()
        columns["code_norm"] = columns["code"].casefold()
        built = ContactFields(**fields)
        return built, columns, contact_id, code, self._audit_fields(tuple(present), built)

    def _phone(self, number: str, country: str | None) -> dict[str, Any]:
        """The contact's phone from the `phone` and `phone_country_code` cells."""
        country = (country or "").strip() or None
        if len(number) > _MAX_NUMBER or (country is not None and len(country) > _MAX_COUNTRY):
            raise NotPlain
        if country is not None and country[0] == "'":
            raise NotPlain
        e164, alpha3 = phone_e164_and_country(number, country)
        return {"phone_type": "MOBILE", "country_code": alpha3, "number": e164, "is_primary": True}

    def _audit_fields(self, present: tuple[str, ...], fields: ContactFields) -> list[str]:
        # Which fields are non-empty depends only on which cells were given (a given value is
        # never empty): the CREATED audit entry's names are worked out once per combination.
        names = self._audit.get(present)
        if names is None:
            names = self._audit[present] = service.created_audit_fields(fields)
        return names
