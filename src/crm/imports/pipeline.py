"""The batch loop of a contact import, shared by `crm contacts import` and the import jobs.

Batches are validated ahead (in a thread, or in worker processes) while earlier batches are
written, so the database's work overlaps the CPU's. A batch is one transaction: its contacts,
phones, consent history, identities (rows with a password hash) and audit rows, each table in
one COPY on PostgreSQL or one multi-row INSERT elsewhere, plus whatever the caller records for
it (an import job's progress and errors). With one writer (the default, and always on SQLite,
which writes one transaction at a time) batches commit in file order, so a crash loses no
committed batch and a resumed job repeats none. With `writers` > 1 on PostgreSQL, up to that
many batch transactions are in flight at once, each only beside batches whose unique keys it
does not share (`claims`), so the rows kept are those a one-at-a-time import keeps; a crash
may then leave a later batch committed and an earlier one not, which a re-run (skipping the
ids and codes it finds) completes. Rows are not held beyond their batch.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.clock import Clock
from crm.contacts import custom_fields, importer
from crm.contacts.custom_fields import FieldRule
from crm.contacts.import_reader import BadRow, Row
from crm.contacts.importer import BatchResult, Rejected
from crm.db import session_scope
from crm.imports import claims, credentials, prepare
from crm.imports.prepare import Batch
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
    # Validator processes; 0 or 1 validates in a thread of this process.
    processes: int = 0
    # Batch transactions in flight at once on PostgreSQL (1 on SQLite). More than one commits
    # batches out of file order, so a caller that records where to resume keeps 1.
    writers: int = 1


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


def _prepare(
    rows: prepare.Rows, options: Options, clock: Clock, rules: Mapping[str, FieldRule]
) -> Batch:
    """Validate one batch in a thread of this process."""
    return prepare.prepare(
        rows,
        tenant_id=options.tenant_id,
        mode=options.mode,
        firebase=options.firebase,
        now=clock.now(),
        rules=rules,
    )


async def _write(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    batch: Batch,
    options: Options,
    on_batch: OnBatch | None,
    analyze: bool,
    analyze_identities: bool = False,
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
            if analyze_identities:
                await credentials.refresh_statistics(session)


@dataclass
class _Pending:
    validating: asyncio.Future[Batch]
    bad: list[Rejected]
    last_line: int


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
    loop = asyncio.get_running_loop()
    pool = prepare.executor(options.processes)
    writers = options.writers if _dialect(sessions) == "postgresql" else 1
    # Batches validated ahead of those being written: one per validator and writer.
    ahead = max(1, options.processes) + writers - 1
    queued: deque[_Pending] = deque()
    # The batch transactions in flight, with the unique keys each claims (None: alone).
    in_flight: dict[asyncio.Task[None], claims.Claims | None] = {}
    written = analyzed_at = 0
    hashed = False  # whether identities were written: their statistics are refreshed too

    # The tenant's custom field definitions, read once: every row's custom_fields is checked
    # against them as the API checks a contact's.
    async with session_scope(sessions) as session:
        rules = await custom_fields.rules_of(session, options.tenant_id)

    def validate(rows: prepare.Rows) -> asyncio.Future[Batch]:
        if pool is None:
            return asyncio.ensure_future(asyncio.to_thread(_prepare, rows, options, clock, rules))
        call = functools.partial(
            prepare.prepare_plain,
            rows,
            options.tenant_id,
            options.mode,
            options.firebase,
            clock.now(),
            rules,
        )
        plain = loop.run_in_executor(pool, call)
        return asyncio.ensure_future(_rebuilt(plain))

    async def write(batch: Batch, analyze: bool) -> None:
        await _write(sessions, clock, batch, options, on_batch, analyze, hashed)
        summary.add(batch.result)  # counted once its transaction committed

    async def settle_one() -> None:
        """Wait for a batch in flight to end; its failure ends the import."""
        done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            del in_flight[task]
            task.result()

    async def write_oldest() -> None:
        nonlocal written, analyzed_at, hashed
        pending = queued.popleft()
        batch = await pending.validating
        hashed = hashed or bool(batch.hashes.by_line)
        batch.result.rejected[:0] = pending.bad
        batch.last_line = pending.last_line
        keys = claims.of(batch) if writers > 1 else None
        while in_flight and (
            len(in_flight) >= writers or not claims.may_join(keys, in_flight.values())
        ):
            await settle_one()
        # The planner's statistics after the first batch and each time the table doubled.
        written += len(batch.prepared.rows)
        analyze = analyzed_at == 0 or written > 2 * analyzed_at
        if analyze:
            analyzed_at = max(written, 1)
        in_flight[asyncio.create_task(write(batch, analyze))] = keys

    rows_now: prepare.Rows = []
    bad: list[Rejected] = []
    try:
        for row in rows:
            summary.seen += 1
            if isinstance(row, BadRow):
                bad.append(Rejected(row.line, row.reason))
            else:
                rows_now.append((row.line, row.cells))
            if len(rows_now) + len(bad) >= options.batch_size:
                queued.append(_Pending(validate(rows_now), bad, row.line))
                rows_now, bad = [], []
                while len(queued) > ahead:
                    await write_oldest()
                if progress is not None:
                    progress(summary.seen)
        if rows_now or bad:
            last = max([line for line, _ in rows_now] + [r.line for r in bad])
            queued.append(_Pending(validate(rows_now), bad, last))
        while queued:
            await write_oldest()
        while in_flight:
            await settle_one()
    finally:
        try:
            # Whatever ended the import, the transactions in flight end (commit or roll back)
            # before it returns; the first failure is the one raised.
            await asyncio.gather(*in_flight, return_exceptions=True)
        finally:
            for pending in queued:
                pending.validating.cancel()
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
    if progress is not None:
        progress(summary.seen)
    return summary


def _dialect(sessions: async_sessionmaker[AsyncSession]) -> str:
    bind = sessions.kw.get("bind")
    return bind.dialect.name if bind is not None else ""


async def _rebuilt(plain: Awaitable[prepare.Plain]) -> Batch:
    return prepare.from_plain(await plain)
