"""The batch loop of a contact import, shared by `crm contacts import` and the import jobs.

Batches are validated ahead (in a thread, or in worker processes) while earlier batches are
written, so the database's work overlaps the CPU's. A batch is one transaction: its contacts,
phones, consent history, identities (rows with a password hash) and audit rows, each table in
one COPY on PostgreSQL or one multi-row INSERT elsewhere, plus whatever the caller records for
it (an import job's progress and errors).

With one writer (the default, and always on SQLite, which writes one transaction at a time)
batches commit in file order, so a crash loses no committed batch and a resumed job repeats
none. On PostgreSQL an import without an OnBatch may have several batch transactions in flight
at once: `writers` of them when validating in a thread, or one per worker process, each of
which validates and writes its own batches (`writer_processes`). A batch goes beside those in
flight only when it shares none of their ids and codes (`claims`), so the rows kept are those a
one-at-a-time import keeps; a crash may then leave a later batch committed and an earlier one
not, which a re-run (skipping the ids and codes it finds) completes. Rows are not held beyond
their batch.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.clock import Clock
from crm.contacts import custom_fields
from crm.contacts.custom_fields import FieldRule
from crm.contacts.import_reader import BadRow, Row
from crm.contacts.importer import BatchResult, Rejected
from crm.imports import batch_write, claims, prepare, writer_processes
from crm.imports.batch_write import OnBatch, Options
from crm.imports.prepare import Batch
from crm.settings import Settings
from crm.unit_of_work import session_scope

__all__ = ["OnBatch", "Options", "Progress", "Summary", "run"]

Progress = Callable[[int], None]


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


@dataclass
class _Pending:
    validating: asyncio.Future[Batch]
    bad: list[Rejected]
    last_line: int
    keys: claims.Claims | None


async def run(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    rows: Iterable[Row | BadRow],
    options: Options,
    *,
    on_batch: OnBatch | None = None,
    progress: Progress | None = None,
    summary: Summary | None = None,
    settings: Settings | None = None,
) -> Summary:
    """Import `rows` batch by batch; the summary counts every row, rejections with their line.

    `settings` lets worker processes open their own connections (PostgreSQL, no `on_batch`,
    `options.processes` > 1); without it they only validate.
    """
    summary = summary or Summary()
    loop = asyncio.get_running_loop()
    postgresql = _dialect(sessions) == "postgresql"
    side_by_side = postgresql and on_batch is None
    workers_write = side_by_side and settings is not None and options.processes > 1
    pool: Executor | None
    if workers_write:
        assert settings is not None
        pool = writer_processes.pool(options.processes, settings)
        # One batch waiting in the pool's queue beside each worker's, so none waits for this
        # process to read the next batch.
        writers = ahead = options.processes + 1
    else:
        pool = prepare.executor(options.processes)
        writers = max(1, options.writers) if side_by_side else 1
        # Batches validated ahead of those being written: one per validator and writer.
        ahead = max(1, options.processes) + writers - 1
    queued: deque[_Pending] = deque()
    # The batch transactions in flight, with the unique keys each claims (None: alone).
    in_flight: dict[asyncio.Future[None], claims.Claims | None] = {}
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

    async def write(batch: Batch, analyze: bool, analyze_identities: bool) -> None:
        await batch_write.write(
            sessions, clock, batch, options, on_batch, analyze, analyze_identities
        )
        summary.add(batch.result)  # counted once its transaction committed

    async def write_in_worker(
        rows: prepare.Rows, bad: list[Rejected], analyze: bool, analyze_identities: bool
    ) -> None:
        call = functools.partial(
            writer_processes.validate_and_write,
            rows,
            options=options,
            rules=rules,
            analyze=analyze,
            analyze_identities=analyze_identities,
        )
        result = await loop.run_in_executor(pool, call)
        result.rejected[:0] = bad
        summary.add(result)

    async def settle_one() -> None:
        """Wait for a batch in flight to end; its failure ends the import."""
        done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            del in_flight[task]
            task.result()

    async def make_room(keys: claims.Claims | None) -> None:
        while in_flight and (
            len(in_flight) >= writers or not claims.may_join(keys, in_flight.values())
        ):
            await settle_one()

    def analyze_now(rows: int) -> bool:
        """The planner's statistics after the first batch and each time the table doubled."""
        nonlocal written, analyzed_at
        written += rows
        if analyzed_at == 0 or written > 2 * analyzed_at:
            analyzed_at = max(written, 1)
            return True
        return False

    async def submit(rows: prepare.Rows, bad: list[Rejected], last_line: int) -> None:
        """Hand one batch read from the file on, to be validated and written."""
        nonlocal hashed
        keys = claims.of_rows(rows) if writers > 1 else None
        if not workers_write:
            queued.append(_Pending(validate(rows), bad, last_line, keys))
            while len(queued) > ahead:
                await write_oldest()
            return
        await make_room(keys)
        hashed = hashed or keys is None
        task = write_in_worker(rows, bad, analyze_now(len(rows)), hashed)
        in_flight[asyncio.ensure_future(task)] = keys

    async def write_oldest() -> None:
        nonlocal hashed
        pending = queued.popleft()
        batch = await pending.validating
        hashed = hashed or bool(batch.hashes.by_line)
        batch.result.rejected[:0] = pending.bad
        batch.last_line = pending.last_line
        await make_room(pending.keys)
        task = write(batch, analyze_now(len(batch.prepared.rows)), hashed)
        in_flight[asyncio.ensure_future(task)] = pending.keys

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
                await submit(rows_now, bad, row.line)
                rows_now, bad = [], []
                if progress is not None:
                    progress(summary.seen)
        if rows_now or bad:
            last = max([line for line, _ in rows_now] + [r.line for r in bad])
            await submit(rows_now, bad, last)
        while queued:
            await write_oldest()
        while in_flight:
            await settle_one()
        if pool is not None:
            # Every batch is done: let the workers exit (and their CPU time be counted as this
            # process's children).
            await asyncio.to_thread(pool.shutdown, wait=True)
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
