"""The loop that runs queued import jobs in `crm serve` and `crm worker` processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.clock import Clock
from crm.imports import jobs

log = logging.getLogger("crm.imports")


class ImportWorker:
    """Claims one job at a time; any number of processes may run one against one database."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        lease_seconds: float,
        poll_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._stop = asyncio.Event()
        self.wakeup = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()
        self.wakeup.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            claimed = None
            try:
                claimed = await jobs.claim_next(
                    self._sessions, self._clock, lease_seconds=self._lease
                )
                if claimed is not None:
                    await self._run(*claimed)
                    continue
            except Exception:
                log.exception("import worker turn failed")
            self.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), self._poll)

    async def _run(self, job_id: str, claim: int) -> None:
        task = asyncio.create_task(
            jobs.run_job(self._sessions, self._clock, job_id, claim, lease_seconds=self._lease)
        )
        stopping = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if task.done():
            task.result()
            return
        # Stopping mid-job: the batch in flight rolls back and the job is left for the next
        # worker, which resumes after the last committed batch.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await jobs.release(self._sessions, self._clock, job_id, claim)
