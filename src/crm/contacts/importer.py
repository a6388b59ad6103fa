"""Bulk import and export of contacts as CSV or JSON lines, with the API's own validation.

A CSV row uses the API's field names. Scalar fields are plain cells; `phones`, `addresses`,
`custom_fields`, `demographics` and `tags` are JSON cells (tags may also be `a;b;c`), and the
conveniences `phone` + `phone_country_code`, `gender` and `date_of_birth` (YYYY-MM-DD) fill a
primary mobile phone and the demographics. Empty cells are absent fields. A row whose `id` or
`code` already exists is skipped, so re-running an import creates nothing twice. Export puts a
`'` before a cell a spreadsheet would run as a formula, and import takes it off again.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.contacts import service
from crm.contacts.models import Contact, ContactPhone
from crm.contacts.schemas import ContactCreate, ContactRead, contact_read
from crm.errors import AppError
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
EXPORT_COLUMNS = (*SCALAR_COLUMNS, *JSON_COLUMNS, "created_date", "updated_date")
KNOWN_COLUMNS = frozenset((*EXPORT_COLUMNS, *CONVENIENCE_COLUMNS))
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

    Each row runs in a savepoint, so a rejected row leaves nothing behind while the batch's
    good rows are committed together by the caller.
    """
    result = BatchResult()
    for line, row in rows:
        try:
            body = ContactCreate.model_validate(row_to_body(row))
        except (ValidationError, ValueError) as exc:
            result.rejected.append(Rejected(line, _reason(exc)))
            continue
        refs = [
            c
            for c in (
                Contact.id == body.id if body.id else None,
                Contact.code == body.code if body.code else None,
            )
            if c is not None
        ]
        if refs:
            found = await session.scalar(
                select(Contact.pk)
                .where(Contact.tenant_id == tenant_id, Contact.mode == mode, or_(*refs))
                .limit(1)
            )
            if found is not None:
                result.skipped += 1
                continue
        try:
            async with session.begin_nested():
                await service.create(
                    session,
                    clock,
                    tenant_id=tenant_id,
                    mode=mode,
                    fields=body.service_fields(only_set=False),
                    source=SOURCE,
                    actor=actor,
                    contact_id=body.id,
                    code=body.code,
                    contact_type=body.contact_type,
                )
        except AppError as exc:
            result.rejected.append(Rejected(line, _reason(exc)))
            continue
        result.created += 1
    return result


async def export_contacts(
    session: AsyncSession, *, tenant_id: str, mode: str, batch: int = 1000
) -> AsyncIterator[ContactRead]:
    """Every live contact of a tenant and mode in creation order, read in keyset pages."""
    last_pk = 0
    while True:
        contacts = list(
            await session.scalars(
                select(Contact)
                .where(
                    Contact.tenant_id == tenant_id,
                    Contact.mode == mode,
                    Contact.erased_at.is_(None),
                    Contact.pk > last_pk,
                )
                .order_by(Contact.pk)
                .limit(batch)
            )
        )
        if not contacts:
            return
        phones: dict[int, list[ContactPhone]] = await service.phones_of(
            session, [c.pk for c in contacts]
        )
        for contact in contacts:
            yield contact_read(contact, phones[contact.pk])
        last_pk = contacts[-1].pk


def csv_header() -> str:
    out = io.StringIO()
    csv.writer(out).writerow(EXPORT_COLUMNS)
    return out.getvalue()


def csv_line(contact: ContactRead) -> str:
    """One contact as a CSV row that `import` reads back (ids of phones and addresses left out)."""
    data = contact.model_dump(mode="json")
    data["phones"] = [{k: v for k, v in p.items() if k != "id"} for p in data["phones"]]
    data["addresses"] = [
        {k: v for k, v in a.items() if k != "id" and v is not None} for a in data["addresses"]
    ]
    if data["demographics"] == {"gender": None, "date_of_birth": None}:
        data["demographics"] = None
    cells: list[str] = []
    for name in EXPORT_COLUMNS:
        value = data.get(name)
        if name in JSON_COLUMNS:
            cells.append(json.dumps(value, ensure_ascii=False) if value else "")
        elif isinstance(value, bool):
            cells.append("true" if value else "false")
        else:
            cells.append("" if value is None else str(value))
    out = io.StringIO()
    csv.writer(out).writerow([escape_cell(cell) for cell in cells])
    return out.getvalue()


def jsonl_line(contact: ContactRead) -> str:
    return json.dumps(contact.model_dump(mode="json"), ensure_ascii=False) + "\n"
