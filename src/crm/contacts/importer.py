"""Bulk import and export of contacts as CSV or JSON lines, with the API's own validation.

A CSV row uses the API's field names. Scalar fields are plain cells; `phones`, `addresses`,
`custom_fields`, `demographics` and `tags` are JSON cells (tags may also be `a;b;c`), and the
conveniences `phone` + `phone_country_code`, `gender` and `date_of_birth` (YYYY-MM-DD) fill a
primary mobile phone and the demographics. Empty cells are absent fields. A row whose `id` or
`code` already exists is skipped, so re-running an import creates nothing twice. Export puts a
`'` before a cell a spreadsheet would run as a formula, and import takes it off again.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import Table, insert, literal, select, text, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.contacts import custom_fields, import_copy, service
from crm.contacts.contact_fields import ContactFields, or_none
from crm.contacts.errors import ContactCodeAlreadyExists, ContactIdAlreadyExists
from crm.contacts.import_plain import PlainRows
from crm.contacts.import_rows import ContactValues as ContactValues
from crm.contacts.import_rows import contact_columns
from crm.contacts.import_rows import contact_values as contact_values
from crm.contacts.models import AuditEvent, ConsentEvent, Contact, ContactPhone
from crm.contacts.schemas import ContactCreate
from crm.db import Base
from crm.errors import AppError
from crm.events.models import Event
from crm.events.service import created_event_rows
from crm.ids import short_code
from crm.tenants.errors import TenantNotFound
from crm.tenants.models import Tenant

SOURCE = "IMPORT"
JSON_COLUMNS = ("phones", "addresses", "custom_fields", "demographics", "tags")
SCALAR_COLUMNS = (
    "id",
    "code",
    "contact_type",
    "title",
    "first_name",
    "middle_name",
    "last_name",
    "company_name",
    "email_address",
    "language_code",
    "country_of_agreement",
    "service_acceptance",
    "email_opt_out",
    "sms_opt_out",
)
CONVENIENCE_COLUMNS = ("phone", "phone_country_code", "gender", "date_of_birth")
# Read by the import pipeline (crm.imports): an EMAIL identity holding an imported hash.
CREDENTIAL_COLUMNS = ("password_hash",)
EXPORT_COLUMNS = (*SCALAR_COLUMNS, *JSON_COLUMNS, "created_date", "updated_date")
KNOWN_COLUMNS = frozenset((*EXPORT_COLUMNS, *CONVENIENCE_COLUMNS, *CREDENTIAL_COLUMNS))
# A cell longer than this cannot be valid for any field (phones and addresses are bounded lists).
MAX_CELL = 64 * 1024
# A cell starting with one of these is run as a formula by spreadsheets (CSV injection: a name
# like `=HYPERLINK(...)` exfiltrates data or runs commands when an agent opens the export).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Rejected:
    line: int
    reason: str


@dataclass
class BatchResult:
    created: int = 0
    skipped: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    # The contacts written, with their line (pk set), for rows written beside them.
    written: list[tuple[int, Contact]] = field(default_factory=list)


# Called with the rows about to be written (after the existing ids and codes are skipped);
# returns those to write and puts the others in the result's rejections.
Screen = Callable[[AsyncSession, list["Prepared"], "BatchResult"], Awaitable[list["Prepared"]]]


async def check_tenant(session: AsyncSession, tenant_id: str) -> None:
    if len(tenant_id) > 36 or await session.get(Tenant, tenant_id) is None:
        raise TenantNotFound()


def _runs_as_formula(value: str) -> bool:
    # Leading apostrophes count through, so a value that already starts with one is escaped
    # again and import's single unescape gives it back unchanged.
    rest = value.lstrip("'")
    return bool(rest) and rest[0] in _FORMULA_START


def escape_cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading `'` before a formula (OWASP)."""
    return "'" + value if _runs_as_formula(value) else value


def unescape_cell(value: str) -> str:
    """The value `escape_cell` was given (import reads back what export wrote)."""
    if value.startswith("'") and _runs_as_formula(value[1:]):
        return value[1:]
    return value


def row_to_body(row: Mapping[str, str | None]) -> dict[str, Any]:
    """A CSV row as the JSON body the API would receive; raises ValueError on a bad JSON cell."""
    row = {name: None if raw is None else unescape_cell(raw.strip()) for name, raw in row.items()}
    body: dict[str, Any] = {}
    for name, raw in row.items():
        if name is None or raw is None:
            continue
        value = raw.strip()
        if not value or name not in KNOWN_COLUMNS:
            continue
        if len(value) > MAX_CELL:
            raise ValueError(f"{name}: cell too long")
        if name in JSON_COLUMNS:
            if name == "tags" and not value.startswith("["):
                body["tags"] = [t.strip() for t in value.split(";") if t.strip()]
                continue
            try:
                body[name] = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError(f"{name}: not valid JSON") from None
        elif name in SCALAR_COLUMNS:
            body[name] = value
    if row.get("phone"):
        phone = {"number": (row["phone"] or "").strip(), "phone_type": "MOBILE", "is_primary": True}
        if row.get("phone_country_code"):
            phone["country_code"] = (row["phone_country_code"] or "").strip()
        body.setdefault("phones", [phone])
    demographics = dict(body.get("demographics") or {})
    if row.get("gender"):
        demographics.setdefault("gender", (row["gender"] or "").strip().upper())
    if row.get("date_of_birth"):
        year, _, rest = (row["date_of_birth"] or "").strip().partition("-")
        month, _, day = rest.partition("-")
        if not (year.isdigit() and month.isdigit() and day.isdigit()):
            raise ValueError("date_of_birth: use YYYY-MM-DD")
        demographics.setdefault(
            "date_of_birth", {"year": int(year), "month": int(month), "day": int(day)}
        )
    if demographics:
        body["demographics"] = demographics
    return body


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for error in exc.errors()[:3]:
            where = ".".join(str(p) for p in error.get("loc", ()))
            parts.append(f"{where}: {error.get('msg', '')}")
        return "INVALID_REQUEST: " + "; ".join(parts)
    if isinstance(exc, AppError):
        detail = f" ({exc.details[0]['field']})" if exc.details else ""
        return f"{exc.code}: {exc.message}{detail}"
    return f"INVALID_REQUEST: {exc}"


@dataclass
class Prepared:
    line: int
    contact: Contact
    fields: ContactFields
    given_id: str | None
    given_code: str | None
    # The CREATED audit entry's field names when already known (the plain rows' fast path).
    audit_fields: list[str] | None = None


def _prepare(
    line: int,
    row: Mapping[str, str | None],
    *,
    tenant_id: str,
    mode: str,
    now: Any,
    rules: Mapping[str, custom_fields.FieldRule],
) -> Prepared:
    """A row checked by the API's schema and the service's rules, as the contact row to write."""
    body = ContactCreate.model_validate(row_to_body(row))
    fields = service.prepare_new(
        mode=mode,
        fields=body.contact_fields(only_set=False),
        contact_id=body.id,
        code=body.code,
        contact_type=body.contact_type,
    )
    custom = or_none(fields.custom_fields)
    if custom:
        fields = fields._replace(custom_fields=custom_fields.check_values(rules, custom))
    values = contact_columns(
        tenant_id=tenant_id,
        mode=mode,
        fields=fields.as_dict(),
        contact_id=body.id,
        code=body.code,
        contact_type=body.contact_type,
        now=now,
    )
    return Prepared(line, cast(Contact, ContactValues(values)), fields, body.id, body.code)


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


async def import_batch(
    session: AsyncSession,
    clock: Clock,
    *,
    tenant_id: str,
    mode: str,
    rows: Sequence[tuple[int, Mapping[str, str | None]]],
    actor: str,
) -> BatchResult:
    """Create each valid row; skip rows whose id or code exists; reject the rest with a reason.

    The batch is validated row by row and written with one COPY (PostgreSQL) or multi-row
    INSERT per table. If that meets a taken id or code, the rows whose id or code exists are
    skipped (one query) and the rest written again; if that still meets one (another writer
    won a race), the batch falls back to one savepoint per row, so a bad row never takes its
    neighbours with it. The caller commits.
    """
    rules = await custom_fields.rules_of(session, tenant_id)
    result, prepared = prepare_batch(
        rows, tenant_id=tenant_id, mode=mode, now=clock.now(), rules=rules
    )
    await write_batch(
        session, clock, prepared, tenant_id=tenant_id, mode=mode, actor=actor, result=result
    )
    return result


@dataclass
class PreparedBatch:
    now: Any
    rows: list[Prepared]


def prepare_batch(
    rows: Sequence[tuple[int, Mapping[str, str | None]]],
    *,
    tenant_id: str,
    mode: str,
    now: Any,
    rules: Mapping[str, custom_fields.FieldRule],
) -> tuple[BatchResult, PreparedBatch]:
    """Validate a batch (no database: it may run in a thread while the last batch is written)."""
    result = BatchResult()
    prepared: list[Prepared] = []
    seen_ids: dict[str, int] = {}
    seen_codes: dict[str, int] = {}
    plain = PlainRows(
        tenant_id=tenant_id, mode=mode, now=now, known=KNOWN_COLUMNS, max_cell=MAX_CELL
    )
    for line, row in rows:
        fast = plain.prepare(row)
        if fast is not None:
            fields, values, given_id, given_code, audit_fields = fast
            contact = cast(Contact, ContactValues(values))
            item = Prepared(line, contact, fields, given_id, given_code, audit_fields)
        else:
            try:
                item = _prepare(line, row, tenant_id=tenant_id, mode=mode, now=now, rules=rules)
            except (ValidationError, ValueError, AppError) as exc:
                result.rejected.append(Rejected(line, _reason(exc)))
                continue
        duplicate = _duplicate(item, seen_ids, seen_codes)
        if duplicate:
            result.rejected.append(Rejected(line, duplicate))
            continue
        prepared.append(item)
    return result, PreparedBatch(now, prepared)


async def write_batch(
    session: AsyncSession,
    clock: Clock,
    batch: PreparedBatch,
    *,
    tenant_id: str,
    mode: str,
    actor: str,
    result: BatchResult,
    screen: Screen | None = None,
) -> None:
    """Skip the rows whose id or code exists and write the rest; counts go into `result`.

    Without a screen the rows are written as they are first: in a fresh import no id or code
    exists, and the existence check (two index probes per row, a round trip) is only needed
    when the write meets a taken one. A screen (identities to check) needs the existing rows
    skipped before it looks, so it gets the check first.
    """
    if screen is None and await _written(session, batch.rows, now=batch.now, actor=actor):
        result.created += len(batch.rows)
        result.written.extend((item.line, item.contact) for item in batch.rows)
        return
    prepared = await _drop_existing(
        session, batch.rows, tenant_id=tenant_id, mode=mode, result=result
    )
    if screen is not None and prepared:
        prepared = await screen(session, prepared, result)
    if not prepared:
        return
    if not await _written(session, prepared, now=batch.now, actor=actor):
        await _write_one_by_one(
            session, clock, prepared, tenant_id=tenant_id, mode=mode, actor=actor, result=result
        )
        return
    result.created += len(prepared)
    result.written.extend((item.line, item.contact) for item in prepared)


async def _written(
    session: AsyncSession, prepared: Sequence[Prepared], *, now: Any, actor: str
) -> bool:
    """Write the rows in one savepoint; False (and nothing written) when one meets a taken
    unique key."""
    if not prepared:
        return True
    try:
        async with session.begin_nested():
            await _write(session, prepared, now=now, actor=actor)
    except IntegrityError:
        return False
    return True


def _duplicate(item: Prepared, seen_ids: dict[str, int], seen_codes: dict[str, int]) -> str:
    """Why a row repeats an earlier row of its batch, or "" when it does not."""
    if item.given_id is not None:
        if item.given_id in seen_ids:
            return (
                f"DUPLICATE_IN_FILE: id {item.given_id} is also on line {seen_ids[item.given_id]}"
            )
        seen_ids[item.given_id] = item.line
    if item.given_code is not None:
        if item.given_code in seen_codes:
            where = seen_codes[item.given_code]
            return f"DUPLICATE_IN_FILE: code {item.given_code} is also on line {where}"
        seen_codes[item.given_code] = item.line
    return ""


_TAKEN = text(
    "SELECT 'id', id FROM contacts WHERE tenant_id = :tenant_id AND mode = :mode"
    " AND id = ANY(CAST(:ids AS VARCHAR[]))"
    " UNION ALL SELECT 'code', code FROM contacts WHERE tenant_id = :tenant_id AND mode = :mode"
    " AND code = ANY(CAST(:codes AS VARCHAR[]))"
)


async def _drop_existing(
    session: AsyncSession,
    prepared: list[Prepared],
    *,
    tenant_id: str,
    mode: str,
    result: BatchResult,
) -> list[Prepared]:
    """The rows whose id and code are free; rows whose given id or code exists are skipped."""
    ids = [p.contact.id for p in prepared]
    codes = [p.contact.code for p in prepared]
    if not prepared:
        return prepared
    # One branch per unique index (an OR of the two lists can make PostgreSQL scan the table),
    # in one round trip.
    if session.get_bind().dialect.name == "postgresql":
        # Each list as one array parameter: an IN list of a batch's ids and codes is two
        # thousand parameters, which SQLAlchemy renders anew for every batch (measured: as much
        # CPU as building the batch's COPY records).
        found = await session.execute(
            _TAKEN, {"tenant_id": tenant_id, "mode": mode, "ids": ids, "codes": codes}
        )
    else:
        scope = (Contact.tenant_id == tenant_id, Contact.mode == mode)
        found = await session.execute(
            union_all(
                select(literal("id"), Contact.id).where(*scope, Contact.id.in_(ids)),
                select(literal("code"), Contact.code).where(*scope, Contact.code.in_(codes)),
            )
        )
    taken_ids: set[str] = set()
    taken_codes: set[str] = set()
    for kind, value in found:
        (taken_ids if kind == "id" else taken_codes).add(value)
    kept: list[Prepared] = []
    for item in prepared:
        if item.given_id in taken_ids or item.given_code in taken_codes:
            result.skipped += 1
            continue
        if item.contact.code in taken_codes or item.contact.id in taken_ids:
            # A generated id or code met an existing one (rare): the per-row fallback retries it.
            item.contact.code = short_code()
            item.contact.code_norm = item.contact.code.casefold()
        kept.append(item)
    return kept


async def _write(
    session: AsyncSession, prepared: Sequence[Prepared], *, now: Any, actor: str
) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # Each table's rows in one COPY, built as records directly.
        await import_copy.write_created(session, prepared, now=now, actor=actor, source=SOURCE)
        return
    table = _table(Contact)
    contacts = [contact_values(p.contact) for p in prepared]
    pks = (
        await session.execute(
            insert(table).returning(table.c.pk, sort_by_parameter_order=True), contacts
        )
    ).scalars()
    phones: list[dict[str, Any]] = []
    consents: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    for item, pk in zip(prepared, pks, strict=True):
        contact, fields = item.contact, item.fields
        contact.pk = pk
        phones.extend(service.phone_rows(contact, or_none(fields.phones) or []))
        consents.extend(service.consent_rows(contact, service.created_consent(fields), SOURCE, now))
        audits.append(
            service.audit_row(contact, "CREATED", actor, service.created_audit_fields(fields), now)
        )
    events = created_event_rows(session, [p.contact for p in prepared], actor=actor, now=now)
    for model, rows in (
        (ContactPhone, phones),
        (ConsentEvent, consents),
        (AuditEvent, audits),
        (Event, events),
    ):
        if rows:
            await session.execute(insert(_table(model)), rows)


async def _write_one_by_one(
    session: AsyncSession,
    clock: Clock,
    prepared: Sequence[Prepared],
    *,
    tenant_id: str,
    mode: str,
    actor: str,
    result: BatchResult,
) -> None:
    for item in prepared:
        try:
            async with session.begin_nested():
                contact = await service.create(
                    session,
                    clock,
                    tenant_id=tenant_id,
                    mode=mode,
                    fields=item.fields,
                    source=SOURCE,
                    actor=actor,
                    contact_id=item.given_id,
                    code=item.given_code,
                    contact_type=item.contact.contact_type,
                )
        except (ContactIdAlreadyExists, ContactCodeAlreadyExists):
            result.skipped += 1
            continue
        except AppError as exc:
            result.rejected.append(Rejected(item.line, _reason(exc)))
            continue
        result.created += 1
        result.written.append((item.line, contact))


async def refresh_statistics(session: AsyncSession) -> None:
    """Let PostgreSQL's planner see the rows an import added (autovacuum analyzes too late).

    Measured: with the statistics of the empty table, the per-batch existence check by id or
    code is planned as a scan of the tenant's rows by another index, growing with each batch
    (8 s of the 10 s spent writing 10,000 rows); after an ANALYZE it uses the unique index.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("ANALYZE contacts"))
