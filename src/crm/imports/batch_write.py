"""Writing one validated import batch in one transaction, in this process or in a worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.clock import Clock
from crm.contacts import importer
from crm.contacts.importer import BatchResult
from crm.imports import credentials
from crm.imports.prepare import Batch
from crm.security.legacy_hashes import FirebaseScrypt
from crm.unit_of_work import session_scope

# Called in each batch's transaction with the batch's result and its last line.
OnBatch = Callable[[AsyncSession, BatchResult, int], Awaitable[None]]
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
    # Validator processes; 0 or 1 validates in a thread of this process. On PostgreSQL,
    # without an OnBatch, each process also writes the batches it validates.
    processes: int = 0
    # Batch transactions in flight at once on PostgreSQL when validating in a thread (1 on
    # SQLite). More than one commits batches out of file order, so a caller that records where
    # to resume keeps 1.
    writers: int = 1


async def write(
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
            screen=credentials.screen(batch.hashes, tenant_id=options.tenant_id, mode=options.mode)
            if batch.hashes.by_line
            else None,
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
