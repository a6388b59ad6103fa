"""The vocabulary of a contact's writable fields: one typed object that every surface's schema
builds and the contacts service reads, so a rule about a field holds whichever way it came in.

A member left `UNSET` was not given: a partial update leaves it as it is, while `None` clears
it. The lists of field names the service, the import and the documents keep (columns, lists,
consent flags, documents, search forms) are read from the members' declarations here.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import ItemsView, Iterable
from collections.abc import Set as AbstractSet
from typing import Annotated, Any, Final, NamedTuple, TypedDict, TypeVar

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


class Kind(enum.Enum):
    """What a member is beyond a plain column, marked on its declaration."""

    LIST = "LIST"  # a JSON list column: given as None, it is stored empty
    DOCUMENT = "DOCUMENT"  # CRM.COM's documents and company profile (crm.documents)
    CONSENT = "CONSENT"  # a consent flag, with a history of its own
    OWN_TABLE = "OWN_TABLE"  # rows of another table, not a column of `contacts`


class SearchForm(NamedTuple):
    """The column keeping a name's case- and accent-insensitive form for prefix search."""

    column: str


_Text = str | Unset | None
_Number = int | Unset | None
_Flag = bool | Unset
_Strings = Annotated[list[str] | Unset | None, Kind.LIST]
_Document = Annotated[_Text, Kind.DOCUMENT]


# A NamedTuple rather than a frozen dataclass: as immutable, and about five times cheaper to
# build (a frozen dataclass sets each of its 35 slots through object.__setattr__), which a bulk
# import does twice a row.
class ContactFields(NamedTuple):
    """A contact's writable fields, each a value, `None` (cleared) or `UNSET` (not given).

    Lists given as `None` are stored empty; consent flags are never `None` once given.
    """

    title: _Text = UNSET
    first_name: Annotated[_Text, SearchForm("first_name_norm")] = UNSET
    middle_name: _Text = UNSET
    last_name: Annotated[_Text, SearchForm("last_name_norm")] = UNSET
    company_name: Annotated[_Text, SearchForm("company_name_norm")] = UNSET
    email_address: _Text = UNSET
    language_code: _Text = UNSET
    country_of_agreement: _Text = UNSET
    gender: _Text = UNSET
    birth_year: _Number = UNSET
    birth_month: _Number = UNSET
    birth_day: _Number = UNSET
    addresses: Annotated[list[Address] | Unset | None, Kind.LIST] = UNSET
    custom_fields: Annotated[list[CustomFieldValue] | Unset | None, Kind.LIST] = UNSET
    tags: _Strings = UNSET
    referral_code: _Text = UNSET
    name_day_month: Annotated[_Number, Kind.DOCUMENT] = UNSET
    name_day_day: Annotated[_Number, Kind.DOCUMENT] = UNSET
    passport_number: _Document = UNSET
    passport_country: _Document = UNSET
    passport_expiration: Annotated[_Number, Kind.DOCUMENT] = UNSET
    id_number: _Document = UNSET
    id_country: _Document = UNSET
    id_expiration: Annotated[_Number, Kind.DOCUMENT] = UNSET
    statutory_number: _Document = UNSET
    registration_number: _Document = UNSET
    registration_country: _Document = UNSET
    tax_reference_number: _Document = UNSET
    vat_registration_number: _Document = UNSET
    industry_id: _Document = UNSET
    sub_industries: Annotated[_Strings, Kind.DOCUMENT] = UNSET
    loyalty_identifiers: Annotated[_Strings, Kind.DOCUMENT] = UNSET
    phones: Annotated[list[Phone] | Unset | None, Kind.OWN_TABLE] = UNSET
    service_acceptance: Annotated[_Flag, Kind.CONSENT] = UNSET
    email_opt_out: Annotated[_Flag, Kind.CONSENT] = UNSET
    sms_opt_out: Annotated[_Flag, Kind.CONSENT] = UNSET

    def given(self) -> ItemsView[str, Any]:
        """(name, value) of each member given, in the order declared."""
        return self.as_dict().items()

    def as_dict(self) -> dict[str, Any]:
        """The given members by name, for code that reads the fields as plain values."""
        return {n: v for n, v in zip(FIELD_NAMES, self, strict=True) if v is not UNSET}

    def only(self, names: Iterable[str]) -> ContactFields:
        """These fields with every member but `names` unset."""
        return ContactFields(**{name: getattr(self, name) for name in names})


def _marks() -> dict[str, tuple[object, ...]]:
    hints = typing.get_type_hints(ContactFields, include_extras=True)
    return {name: getattr(hints[name], "__metadata__", ()) for name in ContactFields._fields}


_MARKS = _marks()


def _marked(kind: Kind) -> tuple[str, ...]:
    return tuple(name for name, marks in _MARKS.items() if kind in marks)


FIELD_NAMES: Final = ContactFields._fields
LIST_FIELDS: Final = _marked(Kind.LIST)
CONSENT_FLAGS: Final = _marked(Kind.CONSENT)
DOCUMENT_FIELDS: Final = _marked(Kind.DOCUMENT)
DOCUMENT_LIST_FIELDS: Final = tuple(n for n in DOCUMENT_FIELDS if n in LIST_FIELDS)
# Columns of `contacts` a surface writes directly, in the order declared.
COLUMN_FIELDS: Final = tuple(
    n for n in FIELD_NAMES if n not in CONSENT_FLAGS and n not in _marked(Kind.OWN_TABLE)
)
SEARCH_FORMS: Final = {
    name: mark.column
    for name, marks in _MARKS.items()
    for mark in marks
    if isinstance(mark, SearchForm)
}


def given_in(present: AbstractSet[str], name: str, value: T) -> T | Unset:
    """A body's member as a field: `value` when the body gave `name`, else UNSET."""
    return value if name in present else UNSET


def consent_in(present: AbstractSet[str], name: str, value: bool | None) -> bool | Unset:
    """A body's consent flag as a field: consent is a yes or no, so a null flag is left as it
    is rather than read as "no"."""
    return UNSET if name not in present or value is None else value


# Members every surface's schema takes under the field's own name, as text.
NAME_MEMBERS: Final = (
    "title",
    "first_name",
    "middle_name",
    "last_name",
    "company_name",
    "language_code",
    "country_of_agreement",
)


def members_in(source: object, present: AbstractSet[str], names: Iterable[str]) -> dict[str, Any]:
    """`given_in` for each of `names`, read from the attribute of the same name."""
    return {name: given_in(present, name, getattr(source, name)) for name in names}


def consents_in(source: object, present: AbstractSet[str]) -> dict[str, Any]:
    """`consent_in` for every consent flag, read from the attribute of the same name."""
    return {name: consent_in(present, name, getattr(source, name)) for name in CONSENT_FLAGS}


def or_none(value: T | Unset | None) -> T | None:
    """A member's value, None when it was not given (for rules that read both alike)."""
    return None if value is UNSET else value


def unset_if_none(value: T | None) -> T | Unset:
    """A value to give, or UNSET when there is none (a surface that never clears a field)."""
    return UNSET if value is None else value
