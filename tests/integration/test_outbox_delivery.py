"""The delivery worker against a real database and real loopback SMTP and HTTP servers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from sqlalchemy import select, update

from crm.messaging import integrations
from crm.messaging.models import OutboxMessage
from crm.messaging.outbox import enqueue
from crm.messaging.providers import WebhookSmsProvider, verify_webhook_signature
from crm.messaging.templates import render
from crm.messaging.worker import DeliveryWorker
from crm.runtime import Runtime
from crm.tenants import service as tenants
from crm.tenants.schemas import CallerKey, CreatedTenant
from tests.conftest import TEST_SECRET
from tests.support.http_sink import HttpSink, ScriptedResponse, free_port

CODE = "482913"
PHONE = "+35799000001"
WEBHOOK_SECRET = "whsec-" + "k" * 24


def fast(runtime: Runtime, **overrides: Any) -> Runtime:
    """The shared engine with short backoff, poll and lease, and its own wakeup event."""
    values: dict[str, Any] = {
        "outbox_backoff_base_seconds": 0.05,
        "outbox_backoff_max_seconds": 0.2,
        "outbox_poll_seconds": 0.05,
        "outbox_lease_seconds": 5.0,
    }
    values.update(overrides)
    settings = runtime.settings.model_copy(update=values)
    return dataclasses.replace(runtime, settings=settings, outbox_wakeup=asyncio.Event())


@asynccontextmanager
async def running(rt: Runtime) -> AsyncIterator[DeliveryWorker]:
    worker = DeliveryWorker(rt)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.started.wait(), 5)
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


def live(tenant: CreatedTenant) -> CallerKey:
    return CallerKey(None, tenant.id, tenant.name, None, "secret", "live")


async def configure(
    rt: Runtime, tenant: CreatedTenant, channel: str, provider: str, config: dict[str, Any]
) -> None:
    async with rt.sessions() as session:
        await integrations.put_integration(
            session, rt.settings, rt.secret, rt.clock, live(tenant), channel, provider, config
        )
        await session.commit()


async def webhook_for(rt: Runtime, tenant: CreatedTenant, sink: HttpSink) -> None:
    await configure(
        rt,
        tenant,
        "sms",
        "webhook",
        {"url": sink.url_for("/sms"), "signing_secret": WEBHOOK_SECRET},
    )


async def queue(
    rt: Runtime,
    tenant_id: str,
    *,
    channel: str = "SMS",
    recipient: str = PHONE,
    expires_in: float | None = 600,
    commit: bool = True,
) -> str:
    message = render("OTP", channel, language="en", tenant_name="Acme", code=CODE, ttl_minutes=10)
    now = rt.clock.now()
    async with rt.sessions() as session:
        message_id = await enqueue(
            session,
            rt.clock,
            secret=rt.secret,
            tenant_id=tenant_id,
            mode="live",
            channel=channel,
            recipient=recipient,
            purpose="OTP",
            message=message,
            expires_at=None if expires_in is None else now + timedelta(seconds=expires_in),
        )
        if commit:
            await session.commit()
            rt.outbox_wakeup.set()  # what api.deps.get_session does after such a commit
        else:
            await session.rollback()
    return message_id


async def row(rt: Runtime, message_id: str) -> OutboxMessage | None:
    async with rt.sessions() as session:
        return await session.get(OutboxMessage, message_id)


async def wait_status(
    rt: Runtime, message_id: str, *statuses: str, timeout: float = 10
) -> OutboxMessage:
    deadline = time.monotonic() + timeout
    while True:
        found = await row(rt, message_id)
        if found is not None and found.status in statuses:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"message {message_id} is {found and found.status}, not {statuses}"
            )
        await asyncio.sleep(0.02)


def requests_for(sink: HttpSink, message_id: str) -> list[Any]:
    return [r for r in sink.requests if r.header("x-crm-message-id") == message_id]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog
    # Every test here: the code reached the providers, but never a log line (no console here).
    for record in caplog.records:
        assert CODE not in record.getMessage()
        assert CODE not in json.dumps(record.__dict__, default=str)


async def test_sms_code_arrives_by_webhook_soon_after_commit(
    runtime: Runtime, tenant: CreatedTenant, logs: pytest.LogCaptureFixture
) -> None:
    # A 30 s poll: only the wakeup after commit can explain a delivery well before it. No
    # latency bound is asserted (shared machines are noisy); the poll makes the point.
    rt = fast(runtime, outbox_poll_seconds=30)
    async with HttpSink(default=ScriptedResponse(200, {"id": "wh-1"})) as sink:
        await webhook_for(rt, tenant, sink)
        async with running(rt):
            committed = time.time()
            message_id = await queue(rt, tenant.id)
            (request,) = await sink.wait_for_requests(1, timeout=15)
            latency = request.received_at - committed
            sent = await wait_status(rt, message_id, "sent")
    print(f"commit to first delivery attempt: {latency * 1000:.1f} ms")
    payload = request.json()
    assert payload["to"] == PHONE and payload["message_id"] == message_id
    assert CODE in payload["text"]
    assert verify_webhook_signature(WEBHOOK_SECRET, request.header("x-crm-signature"), request.body)
    assert (sent.attempts, sent.provider, sent.provider_message_id) == (1, "webhook", "wh-1")
    assert sent.sent_at is not None and sent.claimed_at is None


async def test_email_code_arrives_by_smtp(
    runtime: Runtime, tenant: CreatedTenant, logs: pytest.LogCaptureFixture
) -> None:
    class Handler:
        def __init__(self) -> None:
            self.envelopes: list[Any] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.envelopes.append(envelope)
            return "250 OK"

    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ready_timeout=5)
    controller.start()
    try:
        rt = fast(runtime)
        await configure(
            rt,
            tenant,
            "email",
            "smtp",
            {
                "host": "127.0.0.1",
                "port": controller.port,
                "from_address": "Acme <no-reply@acme.example>",
                "starttls": False,
            },
        )
        async with running(rt):
            message_id = await queue(rt, tenant.id, channel="EMAIL", recipient="ann@example.com")
            sent = await wait_status(rt, message_id, "sent")
    finally:
        controller.stop()
    (envelope,) = handler.envelopes
    assert envelope.rcpt_tos == ["ann@example.com"]
    content = envelope.content.decode()
    assert CODE in content and message_id in content  # Message-ID derives from the outbox id
    assert sent.provider == "smtp"


async def test_sms_code_arrives_through_twilio_api(
    runtime: Runtime, tenant: CreatedTenant, logs: pytest.LogCaptureFixture
) -> None:
    rt = fast(runtime)
    sid = "AC" + "0123456789abcdef" * 2
    async with HttpSink(default=ScriptedResponse(201, {"sid": "SM42"})) as sink:
        await configure(
            rt,
            tenant,
            "sms",
            "twilio",
            {
                "account_sid": sid,
                "auth_token": "t" * 32,
                "from_number": "+15005550006",
                "base_url": sink.url,
            },
        )
        async with running(rt):
            message_id = await queue(rt, tenant.id)
            sent = await wait_status(rt, message_id, "sent")
        (request,) = sink.requests
    assert request.route == f"/2010-04-01/Accounts/{sid}/Messages.json"
    assert request.form()["To"] == PHONE and CODE in request.form()["Body"]
    assert (request.header("authorization") or "").startswith("Basic ")
    assert sent.provider_message_id == "SM42"


async def test_rolled_back_transaction_sends_nothing(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime)
    async with HttpSink() as sink:
        await webhook_for(rt, tenant, sink)
        async with running(rt):
            message_id = await queue(rt, tenant.id, commit=False)
            rt.outbox_wakeup.set()
            await asyncio.sleep(0.3)
        assert sink.requests == []
    assert await row(rt, message_id) is None


async def test_provider_outage_is_retried_until_it_recovers_and_sent_once(
    runtime: Runtime, tenant: CreatedTenant, logs: pytest.LogCaptureFixture
) -> None:
    rt = fast(runtime)
    async with HttpSink() as sink:
        sink.script_statuses([500, 503, 500])  # then the default 200
        await webhook_for(rt, tenant, sink)
        async with running(rt):
            message_id = await queue(rt, tenant.id)
            sent = await wait_status(rt, message_id, "sent")
            await asyncio.sleep(0.3)  # nothing else may arrive
        assert len(requests_for(sink, message_id)) == 4
    assert sent.attempts == 4 and sent.last_error is None
    failures = [r for r in logs.records if r.getMessage() == "delivery attempt failed"]
    assert [getattr(r, "attempt", None) for r in failures] == [1, 2, 3]
    assert all(getattr(r, "error", "").startswith("webhook answered 5") for r in failures)


async def test_transient_failures_stop_after_max_attempts(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime, outbox_max_attempts=3)
    async with HttpSink(default=ScriptedResponse(503)) as sink:
        await webhook_for(rt, tenant, sink)
        async with running(rt):
            message_id = await queue(rt, tenant.id)
            failed = await wait_status(rt, message_id, "failed")
            await asyncio.sleep(0.3)
        assert len(requests_for(sink, message_id)) == 3
    assert failed.attempts == 3 and failed.last_error == "webhook answered 503"


def crm_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update(CRM_DATABASE_URL=database_url, CRM_SECRET_KEY=TEST_SECRET)
    return subprocess.run(
        [sys.executable, "-m", "crm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_client_error_fails_permanently_and_operator_can_retry(
    runtime: Runtime, tenant: CreatedTenant, database_url: str
) -> None:
    rt = fast(runtime)
    async with HttpSink() as sink:
        sink.script_statuses([400])
        await webhook_for(rt, tenant, sink)
        async with running(rt):
            message_id = await queue(rt, tenant.id)
            failed = await wait_status(rt, message_id, "failed")
            await asyncio.sleep(0.2)
            assert len(requests_for(sink, message_id)) == 1
            assert (failed.attempts, failed.last_error) == (1, "webhook answered 400")

            listed = await asyncio.to_thread(
                crm_cli, database_url, "outbox", "list", "--status", "failed", "--json"
            )
            assert listed.returncode == 0, listed.stderr
            documents = {d["id"]: d for d in json.loads(listed.stdout)}
            assert documents[message_id]["status"] == "failed"
            assert documents[message_id]["last_error"] == "webhook answered 400"
            assert all(d["status"] == "failed" for d in documents.values())
            assert CODE not in listed.stdout  # operators never see bodies

            retried = await asyncio.to_thread(crm_cli, database_url, "outbox", "retry", message_id)
            assert retried.returncode == 0, retried.stderr
            sent = await wait_status(rt, message_id, "sent")
        assert len(requests_for(sink, message_id)) == 2
    assert sent.attempts == 1
    again = await asyncio.to_thread(crm_cli, database_url, "outbox", "retry", message_id)
    assert again.returncode == 1 and "OUTBOX_MESSAGE_NOT_RETRYABLE" in again.stderr


async def test_expired_otp_message_is_cancelled_not_sent(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime)
    async with HttpSink() as sink:
        await webhook_for(rt, tenant, sink)
        async with running(rt):
            message_id = await queue(rt, tenant.id, expires_in=-1)
            cancelled = await wait_status(rt, message_id, "cancelled")
        assert requests_for(sink, message_id) == []
    assert cancelled.attempts == 0 and "expired" in (cancelled.last_error or "")


async def test_message_is_cancelled_when_its_code_expires_before_the_next_try(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime, outbox_backoff_base_seconds=5, outbox_backoff_max_seconds=5)
    async with HttpSink(default=ScriptedResponse(503)) as sink:
        await webhook_for(rt, tenant, sink)
        async with running(rt):
            message_id = await queue(rt, tenant.id, expires_in=2)
            cancelled = await wait_status(rt, message_id, "cancelled")
        assert len(requests_for(sink, message_id)) == 1
    assert "expires before the next try" in (cancelled.last_error or "")


async def test_message_abandoned_mid_send_is_sent_after_its_lease(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime)
    async with HttpSink() as sink:
        await webhook_for(rt, tenant, sink)
        message_id = await queue(rt, tenant.id)
        now = rt.clock.now()
        async with rt.sessions() as session:
            # What a worker killed mid-send leaves behind: claimed, lease already over.
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id)
                .values(
                    status="sending",
                    attempts=1,
                    claimed_at=now - timedelta(seconds=60),
                    next_attempt_at=now - timedelta(seconds=1),
                )
            )
            await session.commit()
        async with running(rt):
            sent = await wait_status(rt, message_id, "sent")
        assert len(requests_for(sink, message_id)) == 1
    assert sent.attempts == 2


async def test_tenant_provider_overrides_the_deployment_default(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    async with HttpSink() as deployment_sink, HttpSink() as tenant_sink:
        rt = fast(
            runtime,
            sms_provider="webhook",
            sms_webhook_url=deployment_sink.url_for("/default"),
            sms_webhook_secret=SecretStr("d" * 24),
        )
        await webhook_for(rt, tenant, tenant_sink)
        async with rt.sessions() as session:
            other = await tenants.create_tenant(session, rt.clock, "Other Ltd")
            await session.commit()
        async with running(rt):
            own = await queue(rt, tenant.id)
            default = await queue(rt, other.id)
            await wait_status(rt, own, "sent")
            await wait_status(rt, default, "sent")
        assert len(requests_for(tenant_sink, own)) == 1
        assert requests_for(tenant_sink, default) == []
        assert len(requests_for(deployment_sink, default)) == 1
        assert requests_for(deployment_sink, own) == []


async def test_provider_exception_is_retried_and_its_text_never_logged(
    runtime: Runtime,
    tenant: CreatedTenant,
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
) -> None:
    rt = fast(runtime)
    real_send = WebhookSmsProvider.send
    calls = 0

    async def flaky(self: WebhookSmsProvider, message: Any) -> str | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError(f"bug while handling {message.body_text}")  # quotes the code
        return await real_send(self, message)

    monkeypatch.setattr(WebhookSmsProvider, "send", flaky)
    async with HttpSink() as sink:
        await webhook_for(rt, tenant, sink)
        async with running(rt):
            message_id = await queue(rt, tenant.id)
            sent = await wait_status(rt, message_id, "sent")
    assert sent.attempts == 2
    assert any(getattr(r, "error", None) == "unexpected error (RuntimeError)" for r in logs.records)


async def test_two_workers_never_send_a_message_twice(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    first = fast(runtime, outbox_batch_size=3, outbox_concurrency=4)
    second = fast(runtime, outbox_batch_size=3, outbox_concurrency=4)
    async with HttpSink() as sink:
        await webhook_for(first, tenant, sink)
        async with running(first), running(second):
            ids = [await queue(first, tenant.id, expires_in=None) for _ in range(60)]
            second.outbox_wakeup.set()
            await sink.wait_for_requests(60, timeout=30)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                # A new session per look: on SQLite an open transaction holds the write lock.
                async with first.sessions() as session:
                    statuses = set(
                        await session.scalars(
                            select(OutboxMessage.status).where(OutboxMessage.id.in_(ids))
                        )
                    )
                if statuses == {"sent"}:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
        sent_ids = [r.header("x-crm-message-id") for r in sink.requests]
    assert statuses == {"sent"}
    assert sorted(sent_ids) == sorted(ids)  # each exactly once


async def test_shutdown_mid_send_releases_the_claim_for_the_next_worker(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime, outbox_lease_seconds=60)
    async with HttpSink() as sink:
        sink.script(ScriptedResponse(200, delay=10))  # held long past the shutdown grace
        await webhook_for(rt, tenant, sink)
        worker = DeliveryWorker(rt, shutdown_grace=0.1)
        task = asyncio.create_task(worker.run())
        message_id = await queue(rt, tenant.id)
        await sink.wait_for_requests(1, timeout=5)
        worker.stop()
        await asyncio.wait_for(task, 5)
        released = await row(rt, message_id)
        assert released is not None
        # Due again at once, not after the 60 s lease.
        assert (released.status, released.claimed_at, released.attempts) == ("queued", None, 1)
        async with running(rt):
            sent = await wait_status(rt, message_id, "sent")
        assert len(requests_for(sink, message_id)) == 2
    assert sent.attempts == 2
