"""Delivery across real processes: a `crm serve` killed mid-send, and two `crm worker`s on one
PostgreSQL sharing a few hundred messages."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from crm.messaging.models import OutboxMessage
from crm.messaging.outbox import enqueue
from crm.messaging.templates import render
from crm.migrate import upgrade
from crm.runtime import Runtime
from crm.tenants import service as tenants
from tests.support.databases import migrated_database, settings_for
from tests.support.http_sink import HttpSink, ScriptedResponse
from tests.support.server import CrmProcess

CODE = "735102"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(settings_for(url))
    return url


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    with migrated_database("postgresql", tmp_path) as url:
        yield url


@pytest.fixture
async def sink() -> AsyncIterator[HttpSink]:
    async with HttpSink() as running:
        yield running


def webhook_env(sink: HttpSink, **extra: str) -> dict[str, str]:
    return {
        "CRM_SMS_PROVIDER": "webhook",
        "CRM_SMS_WEBHOOK_URL": sink.url_for("/sms"),
        "CRM_SMS_WEBHOOK_SECRET": "whsec-" + "e" * 24,
        "CRM_OUTBOX_POLL_SECONDS": "0.1",
        **extra,
    }


async def queue_messages(url: str, count: int) -> list[str]:
    """A live tenant and `count` OTP SMS committed in one transaction by this (test) process."""
    runtime = Runtime.build(settings_for(url))
    try:
        async with runtime.sessions() as session:
            tenant = await tenants.create_tenant(session, runtime.clock, "Acme")
            message = render(
                "OTP", "SMS", language="en", tenant_name="Acme", code=CODE, ttl_minutes=10
            )
            ids = [
                await enqueue(
                    session,
                    runtime.clock,
                    secret=runtime.secret,
                    tenant_id=tenant.id,
                    mode="live",
                    channel="SMS",
                    recipient=f"+3579900{n:04d}",
                    purpose="OTP",
                    message=message,
                    expires_at=runtime.clock.now() + timedelta(minutes=10),
                )
                for n in range(count)
            ]
            await session.commit()
        return ids
    finally:
        await runtime.close()


async def statuses(url: str) -> dict[str, tuple[str, int]]:
    runtime = Runtime.build(settings_for(url))
    try:
        async with runtime.sessions() as session:
            rows = await session.execute(
                select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.attempts)
            )
            return {i: (s, a) for i, s, a in rows}
    finally:
        await runtime.close()


async def wait_all_sent(url: str, timeout: float) -> dict[str, tuple[str, int]]:
    deadline = time.monotonic() + timeout
    while True:
        found = await statuses(url)
        if found and all(status == "sent" for status, _ in found.values()):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not all sent: {Counter(s for s, _ in found.values())}")
        await asyncio.sleep(0.1)


async def test_serve_killed_mid_send_delivers_after_restart(
    tmp_path: Path, sqlite_url: str, sink: HttpSink
) -> None:
    # The first answer is held for 30 s, so the kill lands while the provider has the request.
    sink.script(ScriptedResponse(200, {"id": "never-answered"}, delay=30))
    env = webhook_env(sink, CRM_OUTBOX_LEASE_SECONDS="3")
    server = CrmProcess.serve(tmp_path, sqlite_url, **env).start()
    try:
        (message_id,) = await queue_messages(sqlite_url, 1)
        await sink.wait_for_requests(1, timeout=10)
        server.kill()
        assert (await statuses(sqlite_url))[message_id] == ("sending", 1)

        server.start()  # same port, same log file
        requests = await sink.wait_for_requests(2, timeout=15)
        found = await wait_all_sent(sqlite_url, timeout=10)
    finally:
        server.stop()
    assert found[message_id] == ("sent", 2)
    # At-least-once towards the provider: the resend carries the same id for deduplication.
    assert [r.json()["message_id"] for r in requests] == [message_id, message_id]
    assert "reclaiming a message whose lease expired" in server.logs()
    assert CODE not in server.logs()


async def test_two_worker_processes_on_postgres_never_send_a_message_twice(
    tmp_path: Path, postgres_url: str
) -> None:
    count = 300
    # A little latency per send keeps both workers busy at once, so they really compete.
    async with HttpSink(default=ScriptedResponse(200, {}, delay=0.01)) as sink:
        env = webhook_env(sink, CRM_OUTBOX_BATCH_SIZE="5", CRM_OUTBOX_CONCURRENCY="8")
        workers = [
            CrmProcess.worker(tmp_path, postgres_url, name=f"worker{n}", **env).start()
            for n in (1, 2)
        ]
        try:
            ids = await queue_messages(postgres_url, count)
            await sink.wait_for_requests(count, timeout=60)
            found = await wait_all_sent(postgres_url, timeout=20)
            await asyncio.sleep(0.5)  # a duplicate would arrive late
        finally:
            codes = [worker.stop() for worker in workers]
        sent = Counter(r.json()["message_id"] for r in sink.requests)
    assert codes == [0, 0]  # graceful exit on SIGTERM
    assert len(sink.requests) == count
    assert set(sent) == set(ids) and max(sent.values()) == 1
    assert all(attempts == 1 for _, attempts in found.values())
    shares = [worker.logs().count('"message sent"') for worker in workers]
    assert sum(shares) == count and min(shares) > 0, shares
    assert all(CODE not in worker.logs() for worker in workers)


async def test_worker_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    worker = CrmProcess.worker(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(RuntimeError, match="crm db upgrade"):
        worker.start(timeout=20)
