"""Searching and listing a tenant's contacts with indexed filters, stable sorts and offset paging.

Every predicate is shaped so an index can answer it at a million contacts per tenant:
exact and prefix matches on the case-folded `*_norm`/`email_canonical`/`code_norm` columns
(`LIKE 'abc%'`, served on PostgreSQL by `text_pattern_ops` indexes), and phone and identity
matches resolved first to a short list of contact keys through their own unique indexes.

A search_value is several alternatives (a name, email, code or phone prefix). Rather than one
OR, which makes PostgreSQL read every match from the table before sorting, each alternative
takes its own first rows of the page's order from its covering index (see models.Contact),
and the page is cut from their union.

Phone and email filters also match the contact's sign-in identities: a contact registered
through Self-Service with a phone identity has no phone row yet, and an agent looking for
"the customer who signs in with +357..." must find them.

A profile email is whatever someone typed; an email identity proven by a code or link is its
owner's. A search by email therefore ranks contacts holding it as a proven identity first, and
every result says whether its profile email is proven (`email_verified`), so an agent is not
led to a stranger's contact that merely claims the address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, false, func, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from crm.contacts.errors import InvalidSearch
from crm.contacts.models import Contact, ContactPhone
from crm.contacts.service import phones_of, search_form
from crm.errors import AppError, InvalidEmail
from crm.identifiers.core import normalize_email, normalize_phone, parse_phone_credential
from crm.identities.models import Identity

Sort = Literal["CREATED_DATE", "UPDATED_DATE", "LAST_NAME", "CODE"]
Order = Literal["ASC", "DESC"]
MAX_SIZE = 100
# Offset paging reads and discards every skipped row; beyond this, narrow with date filters.
MAX_OFFSET = 100_000
MAX_SEARCH_VALUE = 100
# An identifier shared by more contacts than this is not a useful search key; the bound keeps
# the IN list (and the work per request) small.
_MAX_KEY_MATCHES = 1000
_LIKE_ESCAPE = "/"
_PHONE_LIKE = re.compile(r"^\+?[0-9 ().\-/]{4,40}$")

_SORT_COLUMNS: dict[str, Any] = {
    "CREATED_DATE": Contact.created_at,
    "UPDATED_DATE": Contact.updated_at,
    "LAST_NAME": Contact.last_name_norm,
    "CODE": Contact.code,
}


@dataclass(frozen=True, slots=True)
class SearchQuery:
    search_value: str | None = None
    email_address: str | None = None
    phone: str | None = None
    country_code: str | None = None
    code: str | None = None
    contact_type: str | None = None
    created_gte: datetime | None = None
    created_gt: datetime | None = None
    created_lte: datetime | None = None
    created_lt: datetime | None = None
    updated_gte: datetime | None = None
    updated_gt: datetime | None = None
    updated_lte: datetime | None = None
    updated_lt: datetime | None = None
    sort: Sort = "CREATED_DATE"
    order: Order = "DESC"
    page: int = 1
    size: int = 10
    include_total: bool = False


@dataclass(frozen=True, slots=True)
class SearchResult:
    contacts: list[Contact]
    phones: dict[int, list[ContactPhone]]
    has_more: bool
    total: int | None
    # Per contact with a profile email: whether it is a proven email identity of that contact.
    email_verified: dict[int, bool]


def escape_like(value: str) -> str:
    """Make `%`, `_` and the escape character match themselves in a LIKE pattern."""
    return (
        value.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2)
        .replace("%", _LIKE_ESCAPE + "%")
        .replace("_", _LIKE_ESCAPE + "_")
    )


def _prefix(column: Any, value: str) -> ColumnElement[bool]:
    # The pattern is built here, not with SQL concatenation, so PostgreSQL sees a constant
    # prefix and can turn LIKE into an index range.
    result: ColumnElement[bool] = column.like(escape_like(value) + "%", escape=_LIKE_ESCAPE)
    return result


def _check(query: SearchQuery) -> None:
    if not 1 <= query.size <= MAX_SIZE or query.page < 1:
        raise InvalidSearch("page must be at least 1 and size between 1 and 100.")
    if (query.page - 1) * query.size > MAX_OFFSET:
        raise InvalidSearch(
            f"Paging stops at {MAX_OFFSET} contacts; narrow the search with created_date filters.",
            details=[{"field": "page", "message": "too deep"}],
        )
    if query.search_value is not None and len(query.search_value) > MAX_SEARCH_VALUE:
        raise InvalidSearch(
            details=[{"field": "search_value", "message": f"at most {MAX_SEARCH_VALUE} characters"}]
        )


def phone_e164(value: str, country_code: str | None) -> str:
    """What a user typed as a phone, in E.164: with a country, as a national or full number;
    without, it must carry its calling code ("+357...", "00357..." or "357...")."""
    if country_code:
        return normalize_phone(value, country_code).e164
    return parse_phone_credential(value)


async def contact_pks_with_phone(
    session: AsyncSession, tenant_id: str, mode: str, e164: str
) -> list[int]:
    """Live or not, every contact holding this number as a phone or a sign-in identity."""
    phones = select(ContactPhone.contact_pk).where(
        ContactPhone.tenant_id == tenant_id, ContactPhone.mode == mode, ContactPhone.e164 == e164
    )
    identities = select(Identity.contact_pk).where(
        Identity.tenant_id == tenant_id,
        Identity.mode == mode,
        Identity.provider == "PHONE",
        Identity.identifier == e164,
    )
    rows = await session.scalars(phones.union(identities).limit(_MAX_KEY_MATCHES))
    return list(rows)


async def contact_pks_with_email_identity(
    session: AsyncSession, tenant_id: str, mode: str, canonical: str, *, proven: bool = False
) -> list[int]:
    """Contacts holding an EMAIL identity for `canonical` (with `proven`, only proven ones)."""
    conditions = [
        Identity.tenant_id == tenant_id,
        Identity.mode == mode,
        Identity.provider == "EMAIL",
        Identity.identifier == canonical,
    ]
    if proven:
        conditions.append(Identity.verified_at.is_not(None))
    rows = await session.scalars(
        select(Identity.contact_pk).where(*conditions).limit(_MAX_KEY_MATCHES)
    )
    return list(rows)


async def proven_profile_emails(session: AsyncSession, contacts: list[Contact]) -> dict[int, bool]:
    """For each contact with a profile email: whether it is a proven email identity of its own."""
    emails = {c.pk: c.email_canonical for c in contacts if c.email_canonical}
    if not emails:
        return {}
    rows = await session.execute(
        select(Identity.contact_pk, Identity.identifier).where(
            Identity.contact_pk.in_(list(emails)),
            Identity.provider == "EMAIL",
            Identity.verified_at.is_not(None),
        )
    )
    proven = {(pk, identifier) for pk, identifier in rows}
    return {pk: (pk, email) in proven for pk, email in emails.items()}


def _searched_email(query: SearchQuery) -> str | None:
    """The canonical email a search asks for, if it asks for one."""
    for value in (query.email_address, query.search_value):
        if value is not None and "@" in value:
            try:
                return normalize_email(value.strip()).canonical
            except AppError:
                continue
    return None


async def _email_condition(
    session: AsyncSession, tenant_id: str, mode: str, email: str
) -> ColumnElement[bool]:
    try:
        canonical = normalize_email(email, test_mode=mode == "test").canonical
    except InvalidEmail as exc:
        exc.details = [{"field": "email_address", "message": exc.message}]
        raise
    pks = await contact_pks_with_email_identity(session, tenant_id, mode, canonical)
    return or_(Contact.email_canonical == canonical, Contact.pk.in_(pks))


async def _search_value_branches(
    session: AsyncSession, tenant_id: str, mode: str, raw: str, country_code: str | None
) -> list[ColumnElement[bool]]:
    """The alternatives a search_value matches (any one suffices), each answerable by one index."""
    value = raw.strip()
    if not value:
        return []
    folded = value.casefold()
    branches: list[ColumnElement[bool]] = [
        _prefix(Contact.email_canonical, folded),
        _prefix(Contact.code_norm, folded),
    ]
    name = search_form(value) or ""
    tokens = name.split()
    if len(tokens) == 1:
        branches += [
            _prefix(Contact.first_name_norm, name),
            _prefix(Contact.last_name_norm, name),
            _prefix(Contact.company_name_norm, name),
        ]
    elif len(tokens) > 1:
        first, last = tokens[0], tokens[-1]
        branches += [
            and_(_prefix(Contact.first_name_norm, first), _prefix(Contact.last_name_norm, last)),
            and_(_prefix(Contact.first_name_norm, last), _prefix(Contact.last_name_norm, first)),
            _prefix(Contact.company_name_norm, name),
        ]
    if _PHONE_LIKE.match(value) and sum(c.isdigit() for c in value) >= 4:
        try:
            e164 = phone_e164(value, country_code)
        except AppError:
            e164 = None  # not a phone after all: the other branches still apply
        if e164 is not None:
            pks = await contact_pks_with_phone(session, tenant_id, mode, e164)
            if pks:
                branches.append(Contact.pk.in_(pks))
    if "@" in value:
        try:
            canonical = normalize_email(value, test_mode=mode == "test").canonical
        except AppError:
            canonical = None
        if canonical is not None:
            pks = await contact_pks_with_email_identity(session, tenant_id, mode, canonical)
            if pks:
                branches.append(Contact.pk.in_(pks))
    return branches


async def search(
    session: AsyncSession, tenant_id: str, mode: str, query: SearchQuery
) -> SearchResult:
    """One page of live contacts matching every given filter, in a stable order."""
    _check(query)
    conditions: list[ColumnElement[bool]] = [
        Contact.tenant_id == tenant_id,
        Contact.mode == mode,
        Contact.erased_at.is_(None),
    ]
    branches: list[ColumnElement[bool]] = []
    if query.search_value is not None:
        branches = await _search_value_branches(
            session, tenant_id, mode, query.search_value, query.country_code
        )
    if query.email_address is not None:
        conditions.append(await _email_condition(session, tenant_id, mode, query.email_address))
    if query.phone is not None:
        try:
            e164 = phone_e164(query.phone, query.country_code)
        except AppError as exc:
            exc.details = [{"field": "phone", "message": exc.message}]
            raise
        pks = await contact_pks_with_phone(session, tenant_id, mode, e164)
        conditions.append(Contact.pk.in_(pks) if pks else false())
    if query.code is not None:
        conditions.append(Contact.code == query.code)
    if query.contact_type is not None:
        conditions.append(Contact.contact_type == query.contact_type)
    for column, gte, gt, lte, lt in (
        (
            Contact.created_at,
            query.created_gte,
            query.created_gt,
            query.created_lte,
            query.created_lt,
        ),
        (
            Contact.updated_at,
            query.updated_gte,
            query.updated_gt,
            query.updated_lte,
            query.updated_lt,
        ),
    ):
        if gte is not None:
            conditions.append(column >= gte)
        if gt is not None:
            conditions.append(column > gt)
        if lte is not None:
            conditions.append(column <= lte)
        if lt is not None:
            conditions.append(column < lt)

    sort_column = _SORT_COLUMNS[query.sort]
    # `id` breaks ties in the same direction, so each sort matches an index read one way.
    ordering = (
        [sort_column.desc(), Contact.id.desc()]
        if query.order == "DESC"
        else [sort_column.asc(), Contact.id.asc()]
    )
    email = _searched_email(query)
    if email is not None:
        proven = await contact_pks_with_email_identity(session, tenant_id, mode, email, proven=True)
        if proven:
            ordering = [case((Contact.pk.in_(proven), 0), else_=1), *ordering]
    offset = (query.page - 1) * query.size
    # One row past the page tells whether there is a next page, without counting.
    fetch = query.size + 1
    if branches:
        # An OR across the branches leaves PostgreSQL to read every match from the table (a
        # bitmap OR, thousands of scattered rows for a short name prefix) or to walk the sort
        # index filtering. Instead each branch takes only its own first offset + size + 1 rows
        # in the requested order, from its covering index; the page is among their union.
        keys = union(
            *(
                select(top.c.pk)
                for top in (
                    select(Contact.pk)
                    .where(*conditions, branch)
                    .order_by(*ordering)
                    .limit(offset + fetch)
                    .subquery()
                    for branch in branches
                )
            )
        )
        statement = select(Contact).where(Contact.pk.in_(keys))
    else:
        statement = select(Contact).where(*conditions)
    rows = list(await session.scalars(statement.order_by(*ordering).offset(offset).limit(fetch)))
    contacts = rows[: query.size]
    total = None
    if query.include_total:
        matches: Any = (
            union(*(select(Contact.pk).where(*conditions, branch) for branch in branches))
            if branches
            else select(Contact.pk).where(*conditions)
        )
        total = int(await session.scalar(select(func.count()).select_from(matches.subquery())) or 0)
    phones = await phones_of(session, [c.pk for c in contacts])
    return SearchResult(
        contacts=contacts,
        phones=phones,
        has_more=len(rows) > query.size,
        total=total,
        email_verified=await proven_profile_emails(session, contacts),
    )


async def exists(
    session: AsyncSession,
    tenant_id: str,
    mode: str,
    *,
    email_address: str | None,
    phone: str | None,
    country_code: str | None,
) -> bool:
    """Whether a live contact has this email or phone, as contact data or as a sign-in identity."""
    conditions: list[ColumnElement[bool]] = [
        Contact.tenant_id == tenant_id,
        Contact.mode == mode,
        Contact.erased_at.is_(None),
    ]
    if email_address is not None:
        conditions.append(await _email_condition(session, tenant_id, mode, email_address))
    else:
        assert phone is not None
        try:
            e164 = phone_e164(phone, country_code)
        except AppError as exc:
            exc.details = [{"field": "phone", "message": exc.message}]
            raise
        pks = await contact_pks_with_phone(session, tenant_id, mode, e164)
        if not pks:
            return False
        conditions.append(Contact.pk.in_(pks))
    found = await session.scalar(select(Contact.pk).where(*conditions).limit(1))
    return found is not None
