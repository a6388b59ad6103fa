"""Contact export: every live contact of a tenant and mode, as CSV rows `import` reads back or
as JSON lines, read in keyset pages so memory stays flat whatever the tenant's size."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.contacts import service
from crm.contacts.importer import EXPORT_COLUMNS, JSON_COLUMNS, escape_cell
from crm.contacts.models import Contact, ContactPhone
from crm.contacts.schemas import ContactRead, contact_read


async def count_contacts(session: AsyncSession, *, tenant_id: str, mode: str) -> int:
    """How many contacts `export_contacts` yields (for the progress display)."""
    count = await session.scalar(
        select(func.count())
        .select_from(Contact)
        .where(Contact.tenant_id == tenant_id, Contact.mode == mode, Contact.erased_at.is_(None))
    )
    return int(count or 0)


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
