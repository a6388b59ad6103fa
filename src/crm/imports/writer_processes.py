"""Import batches validated and written by worker processes, each with its own connections.

Measured on 2 CPUs (PostgreSQL, 200,000 and 1,000,000 plain rows): with validation in a thread
and the writes on this process's event loop, this process ran at one core's worth (validation,
the COPY records and their encoding all hold the one interpreter lock) while the database used
less than the other, and validator processes that sent their rows back to be written here paid
about as much for pickling the validated rows as they saved. A worker that validates a batch and
writes it itself sends back only counts and rejections: this process is left reading the file
and handing out batches, and the work spreads over every CPU.

Each worker keeps one event loop and one engine for its life (a connection per batch would cost
more than a small batch's writes); the batch is validated and written exactly as in this process
(`prepare.prepare`, then the pipeline's write).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.util
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm.clock import Clock
from crm.contacts.custom_fields import FieldRule
from crm.contacts.importer import BatchResult
from crm.db import create_engine, session_factory
from crm.imports import batch_write, prepare
from crm.imports.batch_write import Options
from crm.settings import Settings


@dataclass
class _Worker:
    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock


_WORKER: _Worker | None = None


def _start(settings: Settings) -> None:
    """Process initializer: this worker's loop and engine."""
    global _WORKER
    import crm.models  # noqa: F401  (every table mapped: the per-row fallback uses the ORM)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    engine = create_engine(settings)
    _WORKER = _Worker(loop, engine, session_factory(engine), Clock())
    # Pool workers end through multiprocessing's exit path, which runs its finalizers (not
    # atexit): close the connections there, so the server sees a clean goodbye, not a reset.
    multiprocessing.util.Finalize(None, _close, exitpriority=10)


def _close() -> None:
    worker = _WORKER
    if worker is not None:
        worker.loop.run_until_complete(worker.engine.dispose())
        worker.loop.close()


def validate_and_write(
    rows: prepare.Rows,
    *,
    options: Options,
    rules: Mapping[str, FieldRule],
    analyze: bool,
    analyze_identities: bool,
) -> BatchResult:
    """In a worker: validate one batch and write it in one transaction; its counts and
    rejections (the contacts written stay here)."""
    worker = _WORKER
    assert worker is not None, "the pool's initializer did not run"
    batch = prepare.prepare(
        rows,
        tenant_id=options.tenant_id,
        mode=options.mode,
        firebase=options.firebase,
        now=worker.clock.now(),
        rules=rules,
    )
    worker.loop.run_until_complete(
        batch_write.write(
            worker.sessions, worker.clock, batch, options, None, analyze, analyze_identities
        )
    )
    result = batch.result
    result.written = []
    return result


def pool(processes: int, settings: Settings) -> ProcessPoolExecutor:
    # forkserver: a clean process, not a copy of one holding database connections and a loop.
    return ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_start,
        initargs=(settings,),
    )
