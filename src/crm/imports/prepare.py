"""Validating an import batch, in a thread or in another process.

Validation is CPU work in Python (the API's schema, email and phone rules): in one process it
holds the interpreter lock, so an import runs at the speed of one core. With `processes` > 1
batches are validated in worker processes while the event loop writes; a worker sends back
plain column values (no ORM objects: pickling those costs more than building them), which
`ContactValues` carries to the writes.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from crm.contacts import importer
from crm.contacts.custom_fields import FieldRule
from crm.contacts.importer import BatchResult, ContactValues, Prepared, PreparedBatch, Rejected
from crm.contacts.models import Contact
from crm.imports import credentials
from crm.security.legacy_hashes import FirebaseScrypt

Rows = list[tuple[int, Mapping[str, str | None]]]


@dataclass
class Batch:
    result: BatchResult
    prepared: PreparedBatch
    hashes: credentials.Hashes
    last_line: int = 0


def prepare(
    rows: Rows,
    *,
    tenant_id: str,
    mode: str,
    firebase: FirebaseScrypt | None,
    now: datetime,
    rules: Mapping[str, FieldRule],
) -> Batch:
    """Validate one batch (no database)."""
    rejected: list[Rejected] = []
    kept, hashes = credentials.check_hashes(rows, firebase=firebase, rejected=rejected)
    result, prepared = importer.prepare_batch(
        kept, tenant_id=tenant_id, mode=mode, now=now, rules=rules
    )
    result.rejected[:0] = rejected
    return Batch(result, prepared, hashes)


Plain = tuple[BatchResult, datetime, list[tuple[Any, ...]], dict[int, str]]


def prepare_plain(
    rows: Rows,
    tenant_id: str,
    mode: str,
    firebase: FirebaseScrypt | None,
    now: datetime,
    rules: Mapping[str, FieldRule],
) -> Plain:
    """`prepare` in a worker process: the answer holds only plain values."""
    batch = prepare(rows, tenant_id=tenant_id, mode=mode, firebase=firebase, now=now, rules=rules)
    items = [
        (p.line, importer.contact_values(p.contact), p.fields, p.given_id, p.given_code)
        for p in batch.prepared.rows
    ]
    return batch.result, batch.prepared.now, items, batch.hashes.by_line


def from_plain(plain: Plain) -> Batch:
    result, now, items, by_line = plain
    rows = [
        Prepared(line, cast(Contact, ContactValues(values)), fields, given_id, given_code)
        for line, values, fields, given_id, given_code in items
    ]
    return Batch(result, PreparedBatch(now, rows), credentials.Hashes(by_line))


def executor(processes: int) -> Executor | None:
    """A pool of `processes` validators, or None to validate in a thread (`processes` <= 1)."""
    if processes <= 1:
        return None
    # forkserver: a clean process, not a copy of one holding database connections and a loop.
    return ProcessPoolExecutor(
        max_workers=processes, mp_context=multiprocessing.get_context("forkserver")
    )
