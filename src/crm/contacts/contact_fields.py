"""The vocabulary of a contact's writable fields: one typed object that every surface's schema
builds and the contacts service reads, so a rule about a field holds whichever way it came in.

A member left `UNSET` was not given: a partial update leaves it as it is, while `None` clears
it. The lists of field names the service, the import and the documents keep (columns, lists,
consent flags, documents, search forms) are read from the members' declarations here.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator
from dataclasses import field
from typing import Any, Final, TypedDict, TypeVar

T = TypeVar("T")


class Unset(enum.Enum):
    """The type of `UNSET`, an enum so that `value is UNSET` narrows the type."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET


class Phone(TypedDict):
    """A phone as the service takes it; normalised, `number` is E.164 and `country_code` alpha-3."""

    phone_type: str
    country_code: str | None
    number: str
    is_primary: bool


class CustomFieldValue(TypedDict):
    key: str
    value: str | None


# An address is kept whole as a JSON document; its members are the wire's (AddressIn).
Address = dict[str, Any]

# Kept in their own table (contact_phones) rather than a column of `contacts`.
PHONES = "phones"


def _kind(
    *,
    is_list: bool = False,
    document: bool = False,
    consent: bool = False,
    own_table: bool = False,
    search_form: str | None = None,
) -> dict[str, Any]:
    """A member's place in the lists below, kept in its declaration's metadata."""
    return {
        "list": is_list,
        "document": document,
        "consent": consent,
        "own_table": own_table,
        "search_form": search_form,
    }


_PLAIN = _kind()
_LIST = _kind(is_list=True)
_DOCUMENT = _kind(document=True)
_DOCUMENT_LIST = _kind(document=True, is_list=True)
_CONSENT = _kind(consent=True)


@dataclasses.dataclass(frozen=True, slots=True)
class ContactFields:
    """A contact's writable fields, each a value, `None` (cleared) or `UNSET` (not given).

    Lists given as `None` are stored empty; consent flags are never `None` once given.
    """

    title: str | Unset | None = field(default=UNSET, metadata=_PLAIN)
    first_name: str | Unset | None = field(
        default=UNSET, metadata=_kind(search_form="first_name_norm")
    )
    middle_name: str | Unset | None = field(default=UNSET, metadata=_PLAIN)
    last_name: str | Unset | None = field(
        default=UNSET, metadata=_kind(search_form="last_name_norm")
    )
    company_name: str | Unset | None = field(
        default=UNSET, metadata=_kind(search_form="company_name_norm")
    )
    email_address: str | Unset | None = field(default=UNSET, metadata=_PLAIN)
    language_code: str | Unset | None = field(default=UNSET, metadata=_PLAIN)
    country_of_agreement: str | Unset | None = field(default=UNSET, metadata=_PLAIN)
    gender: str | Unset | None = field(default=UNSET, metadata=_PLAIN)
    birth_year: int | Unset | None = field(default=UNSET, metadata=_PLAIN)
    birth_month: int | Unset | None = field(default=UNSET, metadata=_PLAIN)
    birth_day: int | Unset | None = field(default=UNSET, metadata=_PLAIN)
    addresses: list[Address] | Unset | None = field(default=UNSET, metadata=_LIST)
    custom_fields: list[CustomFieldValue] | Unset | None = field(default=UNSET, metadata=_LIST)
    tags: list[str] | Unset | None = field(default=UNSET, metadata=_LIST)
    referral_code: str | Unset | None = field(default=UNSET, metadata=_PLAIN)
    # CRM.COM's documents and company profile (their wire shapes are crm.documents').
    name_day_month: int | Unset | None = field(default=UNSET, metadata=_DOCUMENT)
    name_day_day: int | Unset | None = field(default=UNSET, metadata=_DOCUMENT)
    passport_number: str | Unset | None = field(default=UNSET, metadata=_DOCUMENT)
    passport_country: str | Unset | None = field(default=UNSET, metadata=_DOCUMENT)
    passport_expiration: int | Unset | None = field(default=UNSET, metadata=_DOCUMENT)
    id_number: str | Unset | None = field(default=UNSET, metadata=_DOCUMENT)
    id_country: str | Unset | None = field(default=UNSET, metadata=_DOCUMENT)
    id_expiration: int | Unset | None = field(default=UNSET, metadata=_DOCUMENT)
    statutory_number: str | Unset | None = field(default=UNSET, metadata=_DOCUMENT)
    registration_number: str | Unset | None = field(default=UNSET, metadata=_DOCUMENT)
    registration_country: str | Unset | None = field(default=UNSET, metadata=_DOCUMENT)
    tax_reference_number: str | Unset | None = field(default=UNSET, metadata=_DOCUMENT)
    vat_registration_number: str | Unset | None = field(default=UNSET, metadata=_DOCUMENT)
    industry_id: str | Unset | None = field(default=UNSET, metadata=_DOCUMENT)
    sub_industries: list[str] | Unset | None = field(default=UNSET, metadata=_DOCUMENT_LIST)
    loyalty_identifiers: list[str] | Unset | None = field(default=UNSET, metadata=_DOCUMENT_LIST)
    phones: list[Phone] | Unset | None = field(default=UNSET, metadata=_kind(own_table=True))
    service_acceptance: bool | Unset = field(default=UNSET, metadata=_CONSENT)
    email_opt_out: bool | Unset = field(default=UNSET, metadata=_CONSENT)
    sms_opt_out: bool | Unset = field(default=UNSET, metadata=_CONSENT)

    def given(self) -> Iterator[tuple[str, Any]]:
        """(name, value) of each member given, in the order declared."""
        for name in FIELD_NAMES:
            value = getattr(self, name)
            if value is not UNSET:
                yield name, value

    def only(self, names: Iterable[str]) -> ContactFields:
        """These fields with every member but `names` unset."""
        return ContactFields(**{name: getattr(self, name) for name in names})

    def as_dict(self) -> dict[str, Any]:
        """The given members by name, for code that reads the fields as plain values."""
        return dict(self.given())


_MEMBERS = dataclasses.fields(ContactFields)


def _names(flag: str) -> tuple[str, ...]:
    return tuple(f.name for f in _MEMBERS if f.metadata[flag])


FIELD_NAMES: Final = tuple(f.name for f in _MEMBERS)
# Columns of `contacts` a surface writes directly, in the order declared.
COLUMN_FIELDS: Final = tuple(
    f.name for f in _MEMBERS if not (f.metadata["consent"] or f.metadata["own_table"])
)
LIST_FIELDS: Final = _names("list")
CONSENT_FLAGS: Final = _names("consent")
DOCUMENT_FIELDS: Final = _names("document")
DOCUMENT_LIST_FIELDS: Final = tuple(n for n in DOCUMENT_FIELDS if n in LIST_FIELDS)
# The search forms kept beside a name: its column in the case- and accent-insensitive form.
SEARCH_FORMS: Final[dict[str, str]] = {
    f.name: f.metadata["search_form"] for f in _MEMBERS if f.metadata["search_form"]
}


def or_none(value: T | Unset | None) -> T | None:
    """A member's value, None when it was not given (for rules that read both alike)."""
    return None if value is UNSET else value


def unset_if_none(value: T | None) -> T | Unset:
    """A value to give, or UNSET when there is none (a surface that never clears a field)."""
    return UNSET if value is None else value
