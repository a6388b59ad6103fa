"""The batch loop of a contact import, shared by `crm contacts import` and the import jobs.

Each batch is validated in a worker thread while the previous batch is written, so the
database's work overlaps the CPU's. A batch is one transaction: its contacts, phones, consent
history, identities (rows with a password hash) and audit rows, each table in one multi-row
INSERT, plus whatever the caller records for it (an import job's progress and errors), so a
crash loses no committed batch and repeats none. Rows are not held beyond their batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.clock import Clock
from crm.contacts import importer
from crm.contacts.import_reader import BadRow, Row
from crm.contacts.importer import BatchResult, Rejected
from crm.db import session_scope
from crm.imports import credentials
from crm.security.legacy_hashes import FirebaseScrypt

# Called in each batch's transaction with the batch's result and its last line.
OnBatch = Callable[[AsyncSession, BatchResult, int], Awaitable[None]]
Progress = Callable[[int], None]
# CRM_DB_STATEMENT_TIMEOUT_MS is sized for one API request; a batch statement writes up to
# --batch-size rows on a busy server.
_BATCH_STATEMENT_TIMEOUT = "300s"


@dataclass(frozen=True, slots=True)
class Options:
    tenant_id: str
    mode: str
    actor: str
    batch_size: int = 1000
    firebase: FirebaseScrypt | None = None


@dataclass
class Summary:
    seen: int = 0
    created: int = 0
    skipped: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    keep_rejected: bool = True

    def add(self, result: BatchResult) -> None:
        self.created += result.created
        self.skipped += result.skipped
        if self.keep_rejected:
            self.rejected.extend(result.rejected)


@dataclass
class _Batch:
    result: BatchResult
    prepared: importer.PreparedBatch
    hashes: credentials.Hashes
    last_line: int


def _prepare(
    rows: list[tuple[int, Mapping[str, str | None]]], options: Options, clock: Clock
) -> _Batch:
    """Validate one batch (no database: this runs in a thread)."""
    rejected: list[Rejected] = []
    kept, hashes = credentials.check_hashes(rows, firebase=options.firebase, rejected=rejected)
    result, prepared = importer.prepare_batch(
        kept, tenant_id=options.tenant_id, mode=options.mode, now=clock.now()
    )
    result.rejected[:0] = rejected
    return _Batch(result, prepared, hashes, 0)


async def _write(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    batch: _Batch,
    options: Options,
    on_batch: OnBatch | None,
    analyze: bool,
) -> None:
    async with session_scope(sessions) as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(
                text(f"SET LOCAL statement_timeout = '{_BATCH_STATEMENT_TIMEOUT}'")
            )
        await importer.write_batch(
            session,
            clock,
            batch.prepared,
            tenant_id=options.tenant_id,
            mode=options.mode,
            actor=options.actor,
            result=batch.result,
            screen=credentials.screen(batch.hashes, tenant_id=options.tenant_id, mode=options.mode),
        )
        await credentials.write_identities(
            session, clock, batch.result, batch.hashes, actor=options.actor
        )
        if on_batch is not None:
            await on_batch(session, batch.result, batch.last_line)
        if analyze:
            await importer.refresh_statistics(session)


async def run(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    rows: Iterable[Row | BadRow],
    options: Options,
    *,
    on_batch: OnBatch | None = None,
    progress: Progress | None = None,
    summary: Summary | None = None,
) -> Summary:
    """Import `rows` batch by batch; the summary counts every row, rejections with their line."""
    summary = summary or Summary()
    pending: list[tuple[int, Mapping[str, str | None]]] = []
    bad: list[Rejected] = []
    writing: asyncio.Task[None] | None = None
    written = analyzed_at = 0

    async def write(batch: _Batch, analyze: bool) -> None:
        await _write(sessions, clock, batch, options, on_batch, analyze)
        summary.add(batch.result)  # counted once its transaction committed

    async def flush(last_line: int) -> None:
        nonlocal writing, written, analyzed_at
        batch = await asyncio.to_thread(_prepare, list(pending), options, clock)
        batch.result.rejected[:0] = bad
        batch.last_line = last_line
        pending.clear()
        bad.clear()
        if writing is not None:
            await writing
        # The planner's statistics after the first batch and each time the table doubled.
        written += len(batch.prepared.rows)
        analyze = analyzed_at == 0 or written > 2 * analyzed_at
        if analyze:
            analyzed_at = max(written, 1)
        writing = asyncio.create_task(write(batch, analyze))

    last_line = 0
    try:
        for row in rows:
            summary.seen += 1
            last_line = row.line
            if isinstance(row, BadRow):
                bad.append(Rejected(row.line, row.reason))
            else:
                pending.append((row.line, row.cells))
            if len(pending) + len(bad) >= options.batch_size:
                await flush(last_line)
                if progress is not None:
                    progress(summary.seen)
        if pending or bad:
            await flush(last_line)
    finally:
        if writing is not None:
            await writing
    if progress is not None:
        progress(summary.seen)
    return summary
