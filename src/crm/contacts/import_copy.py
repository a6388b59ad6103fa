"""Writing an import batch's rows with PostgreSQL's COPY instead of multi-row INSERTs.

Measured: with validation cheap, a batch's writes held the import back, and most of their cost
was the statements themselves (SQLAlchemy building a 1,000-row VALUES list with tens of
thousands of parameters, PostgreSQL parsing and planning it), not the rows. COPY sends the rows
as binary records on the same connection and in the same transaction (and savepoint), so a
taken id or code still fails the whole batch, and the caller's per-row fallback still runs.

The values are those the INSERTs would write: a contact's `pk` is taken from its sequence first
(COPY returns nothing), JSON columns are serialised as SQLAlchemy serialises them (`None` is JSON
`null`), and every column is given. The records are tuples in the table's column order, built
straight from the prepared rows, with the batch's ids drawn at once (building a dict per row and
then a tuple from it, and reading the system's random source per id, cost more than the COPY).
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import JSON, Column, Table, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.contacts.contact_fields import or_none
from crm.contacts.import_ids import uuid7_batch
from crm.contacts.models import AuditEvent, ConsentEvent, Contact, ContactPhone
from crm.contacts.rows import created_audit_fields, created_consent
from crm.db import Base
from crm.events.models import Event
from crm.messaging.outbox import OUTBOX_DIRTY
from crm.metrics import REGISTRY as METRICS
from crm.vocabulary import EventType

if TYPE_CHECKING:
    from crm.contacts.importer import Prepared


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


async def next_keys(session: AsyncSession, model: type[Base], count: int) -> list[int]:
    """`count` values of the table's `pk` sequence, ascending (the order an INSERT assigns)."""
    name = _table(model).name
    rows = await session.execute(
        text(
            "SELECT nextval(pg_get_serial_sequence(:table, 'pk')) AS pk "
            "FROM generate_series(1, :count) ORDER BY 1"
        ),
        {"table": name, "count": count},
    )
    return [int(pk) for pk in rows.scalars()]


def _is_json(column: Column[Any]) -> bool:
    return isinstance(column.type, JSON)


async def _copy(
    session: AsyncSession, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]
) -> None:
    if not records:
        return
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    try:
        await driver.copy_records_to_table(table, records=records, columns=columns)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(f"COPY {table}", None, exc) from exc


def _columns(model: type[Base]) -> list[str]:
    return [column.key for column in _table(model).columns]


# Every column of each table, in table order: the records below are built in this order, so
# no column is left to a default (tests/unit/test_import_plain.py checks them against the
# rows the general helpers build).
CONTACT_COLUMNS = _columns(Contact)
PHONE_COLUMNS = _columns(ContactPhone)
CONSENT_COLUMNS = _columns(ConsentEvent)
AUDIT_COLUMNS = _columns(AuditEvent)
EVENT_COLUMNS = _columns(Event)
_CONTACT_VALUES = operator.itemgetter(*CONTACT_COLUMNS)
_CONTACT_JSON = [
    i for i, name in enumerate(CONTACT_COLUMNS) if _is_json(_table(Contact).columns[name])
]
_CREATED = str(EventType.CONTACT_CREATED)
# Characters json.dumps writes as they are (no quote, backslash, control or non-ASCII).
_PLAIN_REF = re.compile(r"[A-Za-z0-9_.:-]*")


def _json(value: Any) -> str:
    # Most JSON cells of an import are empty lists: json.dumps([]) without the call.
    return "[]" if value == [] else json.dumps(value)


@functools.lru_cache(maxsize=256)
def _names_json(names: tuple[str, ...]) -> str:
    return json.dumps(list(names))


def contact_records(prepared: Sequence[Prepared], pks: Sequence[int]) -> list[list[Any]]:
    """The `contacts` records (CONTACT_COLUMNS) of a batch; sets each contact's `pk`."""
    records = []
    for item, pk in zip(prepared, pks, strict=True):
        item.contact.pk = pk
        record = list(_CONTACT_VALUES(item.contact.__dict__))
        for i in _CONTACT_JSON:
            record[i] = _json(record[i])
        records.append(record)
    return records


def created_records(
    prepared: Sequence[Prepared], *, now: datetime, actor: str, source: str
) -> tuple[list[tuple[Any, ...]], ...]:
    """The phones, consent history, CREATED audit entries and `contact.created` events of a
    batch of new contacts (their `pk` set), as records of PHONE_COLUMNS, CONSENT_COLUMNS,
    AUDIT_COLUMNS and EVENT_COLUMNS: the rows of rows.phone_rows, rows.consent_rows,
    audit.audit_row and events.service.created_event_rows, with their ids drawn at once."""
    consents = [created_consent(item.fields) for item in prepared]
    count = sum(len(or_none(item.fields.phones) or ()) for item in prepared)
    count += sum(len(values) for values in consents) + 2 * len(prepared)
    ids = iter(uuid7_batch(count))
    # The event's data as json.dumps writes it: an id or code of the service's alphabets
    # (checked or generated) needs no escaping; the actor is encoded once.
    data_tail = f'}}, "actor": {json.dumps(actor)}}}'
    audit_actor = actor[:80]
    phones, history, audits, events = [], [], [], []
    for item, flags in zip(prepared, consents, strict=True):
        contact, fields = item.contact, item.fields
        pk, tenant_id, mode, contact_id = contact.pk, contact.tenant_id, contact.mode, contact.id
        for phone in or_none(fields.phones) or ():
            number = phone["number"]
            phones.append(
                (
                    next(ids),
                    pk,
                    tenant_id,
                    mode,
                    phone["phone_type"],
                    phone["country_code"],
                    number,
                    number,
                    phone["is_primary"],
                )
            )
        for flag, value in flags.items():
            history.append((next(ids), pk, flag, value, source, now))
        names = item.audit_fields
        if names is None:
            names = created_audit_fields(fields)
        names_json = _names_json(tuple(names))
        audits.append(
            (next(ids), tenant_id, mode, contact_id, "CREATED", audit_actor, names_json, now)
        )
        code = contact.code
        if _PLAIN_REF.fullmatch(contact_id) and _PLAIN_REF.fullmatch(code):
            data = f'{{"contact": {{"id": "{contact_id}", "code": "{code}"{data_tail}'
        else:
            data = json.dumps({"contact": {"id": contact_id, "code": code}, "actor": actor})
        events.append((next(ids), tenant_id, mode, _CREATED, contact_id, data, True, now))
    return phones, history, audits, events


async def write_created(
    session: AsyncSession,
    prepared: Sequence[Prepared],
    *,
    now: datetime,
    actor: str,
    source: str,
) -> None:
    """COPY a batch of new contacts and the rows that come with them (PostgreSQL)."""
    pks = await next_keys(session, Contact, len(prepared))
    await _copy(session, "contacts", CONTACT_COLUMNS, contact_records(prepared, pks))
    phones, history, audits, events = created_records(prepared, now=now, actor=actor, source=source)
    await _copy(session, _table(ContactPhone).name, PHONE_COLUMNS, phones)
    await _copy(session, _table(ConsentEvent).name, CONSENT_COLUMNS, history)
    await _copy(session, _table(AuditEvent).name, AUDIT_COLUMNS, audits)
    await _copy(session, _table(Event).name, EVENT_COLUMNS, events)
    # As events.service.created_event_rows: the commit wakes the worker, and the events count.
    session.info[OUTBOX_DIRTY] = True
    METRICS.events_written.inc(_CREATED, amount=len(prepared))
