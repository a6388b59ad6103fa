"""The delivery worker outlives a database outage and stops promptly when asked."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from crm.messaging.worker import DeliveryWorker
from crm.runtime import Runtime
from crm.settings import Settings
from tests.conftest import TEST_SECRET
from tests.support.http_sink import free_port


async def test_worker_survives_an_unreachable_database_and_stops_gracefully(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="crm.messaging.worker")
    settings = Settings(
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/none",
        secret_key=TEST_SECRET,
        outbox_poll_seconds=0.02,
        _env_file=None,  # type: ignore[call-arg]
    )
    runtime = Runtime.build(settings)
    worker = DeliveryWorker(runtime)
    task = asyncio.create_task(worker.run())
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            failed = [r for r in caplog.records if "could not claim" in r.getMessage()]
            if len(failed) >= 2:
                break
            await asyncio.sleep(0.02)
        assert len(failed) >= 2  # it kept trying
        assert not task.done()
        # The pause after a failure grows (exponential), it does not spin.
        pauses = [getattr(r, "retry_in_seconds", 0) for r in failed]
        assert pauses[1] > pauses[0]
    finally:
        worker.stop()
        started = time.monotonic()
        await asyncio.wait_for(task, 5)
        await runtime.close()
    assert time.monotonic() - started < 2
