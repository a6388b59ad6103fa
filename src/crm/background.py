"""The work a process does besides answering requests: message delivery and housekeeping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from crm import maintenance
from crm.imports.worker import ImportWorker
from crm.messaging.worker import DeliveryWorker
from crm.runtime import Runtime

log = logging.getLogger("crm.background")


@asynccontextmanager
async def background_work(runtime: Runtime) -> AsyncIterator[None]:
    """Run the delivery worker and housekeeping until the block ends, then stop them gracefully.

    Used by every `crm serve` process (unless CRM_WORKER_ENABLED=false) and by `crm worker`.
    """
    worker = DeliveryWorker(runtime)
    delivery = asyncio.create_task(worker.run(), name="delivery-worker")
    imports = ImportWorker(
        runtime.sessions,
        runtime.clock,
        lease_seconds=runtime.settings.import_lease_seconds,
        poll_seconds=runtime.settings.import_poll_seconds,
    )
    importing = asyncio.create_task(imports.run(), name="import-worker")
    stop_housekeeping = asyncio.Event()
    housekeeping = asyncio.create_task(
        maintenance.run_periodically(runtime, stop_housekeeping), name="housekeeping"
    )
    try:
        yield
    finally:
        stop_housekeeping.set()
        # Sends in flight finish (or are released for another worker) before the engine closes.
        worker.stop()
        imports.stop()
        for task in (housekeeping, delivery, importing):
            try:
                await task
            except Exception:
                log.exception("background task %s failed while stopping", task.get_name())
