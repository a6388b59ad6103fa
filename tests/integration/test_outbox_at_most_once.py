"""At most one code per send, and bodies sealed at rest: the worker against real databases and sinks."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from sqlalchemy import update

from crm.messaging import service
from crm.messaging.models import OutboxMessage, OutboxStatus
from crm.messaging.outbox import enqueue, open_body
from crm.messaging.templates import render
from crm.messaging.worker import DeliveryWorker
from crm.runtime import Runtime
from crm.tenants.schemas import CreatedTenant
from tests.integration.test_outbox_delivery import (
    CODE,
    PHONE,
    WEBHOOK_SECRET,
    configure,
    crm_cli,
    fast,
    queue,
    requests_for,
    row,
    running,
    wait_status,
)
from tests.support.http_sink import HttpSink, ScriptedResponse, free_port

SID = "AC" + "0123456789abcdef" * 2


async def twilio_for(rt: Runtime, tenant: CreatedTenant, base_url: str) -> None:
    await configure(
        rt,
        tenant,
        "sms",
        "twilio",
        {
            "account_sid": SID,
            "auth_token": "t" * 32,
            "from_number": "+15005550006",
            "base_url": base_url,
            # Far below the sink's delay: the answer always comes after the provider gave up.
            "timeout": 0.3,
        },
    )


# The sink holds its answer this long; cut short when the sink stops.
LATE = 3.0


async def test_code_answered_after_the_timeout_is_sent_once_and_marked_possibly_sent(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime, outbox_max_attempts=5)
    async with HttpSink(default=ScriptedResponse(201, {"sid": "SM1"}, delay=LATE)) as sink:
        await twilio_for(rt, tenant, sink.url)
        async with running(rt):
            message_id = await queue(rt, tenant.id)
            found = await wait_status(rt, message_id, OutboxStatus.POSSIBLY_SENT)
            # A few more turns of the worker: the message is not due any more.
            for _ in range(5):
                rt.outbox_wakeup.set()
                await asyncio.sleep(rt.settings.outbox_poll_seconds * 2)
        assert len(sink.requests) == 1
    assert found.attempts == 1
    assert "possibly sent" in (found.last_error or "")
    # The operator sees it: in the listing, by status, and in the gauges.
    async with rt.sessions() as session:
        listed = await service.list_messages(
            session, status=OutboxStatus.POSSIBLY_SENT, tenant_id=tenant.id
        )
    assert [m.id for m in listed] == [message_id]
    gauges = await service.outbox_gauges(rt.engine, rt.clock)
    assert gauges.counts[("SMS", "possibly_sent")] >= 1


async def test_failure_before_the_request_left_is_retried(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime, outbox_max_attempts=3)
    # Nothing listens there: the connection is refused, so nothing can have been sent.
    await twilio_for(rt, tenant, f"http://127.0.0.1:{free_port()}")
    async with running(rt):
        message_id = await queue(rt, tenant.id)
        failed = await wait_status(rt, message_id, "failed")
    assert failed.attempts == 3
    assert "connection failed" in (failed.last_error or "")


async def test_webhook_code_is_retried_after_a_late_answer_since_receivers_drop_repeats(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime)
    async with HttpSink(default=ScriptedResponse(200, {"id": "wh-1"})) as sink:
        sink.script(ScriptedResponse(200, {"id": "wh-1"}, delay=LATE))
        await configure(
            rt,
            tenant,
            "sms",
            "webhook",
            {"url": sink.url_for("/sms"), "signing_secret": WEBHOOK_SECRET, "timeout": 0.3},
        )
        async with running(rt):
            message_id = await queue(rt, tenant.id)
            await wait_status(rt, message_id, "sent")
        repeats = requests_for(sink, message_id)
    # The same message_id both times: the receiver's idempotency key.
    assert len(repeats) == 2
    assert {r.json()["message_id"] for r in repeats} == {message_id}


async def test_messages_other_than_codes_stay_at_least_once(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime)
    async with HttpSink(default=ScriptedResponse(201, {"sid": "SM2"})) as sink:
        sink.script(ScriptedResponse(201, {"sid": "SM1"}, delay=LATE))
        await twilio_for(rt, tenant, sink.url)
        message = render(
            "PASSWORD_RESET",
            "EMAIL",
            language="en",
            tenant_name="Acme",
            link_or_token="tok-1",
            ttl_minutes=60,
        )
        async with rt.sessions() as session:
            message_id = await enqueue(
                session,
                rt.clock,
                secret=rt.secret,
                tenant_id=tenant.id,
                mode="live",
                channel="SMS",
                recipient=PHONE,
                purpose="PASSWORD_RESET",
                message=message,
            )
            await session.commit()
        async with running(rt):
            rt.outbox_wakeup.set()
            sent = await wait_status(rt, message_id, "sent")
        assert len(sink.requests) == 2
    assert sent.attempts == 2


async def test_code_left_mid_send_by_a_stopped_worker_is_not_sent_again(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime)
    async with HttpSink(default=ScriptedResponse(201, {"sid": "SM1"})) as sink:
        await twilio_for(rt, tenant, sink.url)
        message_id = await queue(rt, tenant.id)
        now = rt.clock.now()
        async with rt.sessions() as session:
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
            found = await wait_status(rt, message_id, OutboxStatus.POSSIBLY_SENT)
        assert sink.requests == []
    assert found.attempts == 1


async def test_operator_sees_a_possibly_sent_code_and_may_queue_it_again(
    runtime: Runtime, tenant: CreatedTenant, database_url: str
) -> None:
    rt = fast(runtime)
    async with HttpSink(default=ScriptedResponse(201, {"sid": "SM1"}, delay=LATE)) as sink:
        await twilio_for(rt, tenant, sink.url)
        async with running(rt):
            message_id = await queue(rt, tenant.id)
            await wait_status(rt, message_id, OutboxStatus.POSSIBLY_SENT)
        listed = await asyncio.to_thread(
            crm_cli, database_url, "outbox", "list", "--status", "possibly_sent", "--json"
        )
        assert listed.returncode == 0, listed.stderr
        documents = {d["id"]: d for d in json.loads(listed.stdout)}
        assert documents[message_id]["status"] == "possibly_sent"
        assert CODE not in listed.stdout
        sink.default = ScriptedResponse(201, {"sid": "SM2"})
        retried = await asyncio.to_thread(crm_cli, database_url, "outbox", "retry", message_id)
        assert retried.returncode == 0, retried.stderr
        async with running(rt):
            rt.outbox_wakeup.set()
            await wait_status(rt, message_id, "sent")
        # The retried send carried the code: the sealed body was kept for it.
        assert CODE in sink.requests[-1].form()["Body"]


async def test_bodies_are_sealed_at_rest_and_blanked_once_sent(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime)
    async with HttpSink(default=ScriptedResponse(201, {"sid": "SM1"})) as sink:
        await twilio_for(rt, tenant, sink.url)
        message_id = await queue(rt, tenant.id)
        queued = await row(rt, message_id)
        assert queued is not None
        assert CODE not in queued.body_text and queued.body_text.startswith("v1.")
        assert CODE in open_body(rt.secret, queued.body_text)
        async with running(rt):
            sent = await wait_status(rt, message_id, "sent")
        # The worker opened it for the provider, and only there.
        assert CODE in sink.requests[0].form()["Body"]
    assert sent.body_text == "" and sent.body_html is None


async def test_email_bodies_are_sealed_and_a_cancelled_message_loses_its_body(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime)
    message_id = await queue(rt, tenant.id, channel="EMAIL", recipient="ann@example.com")
    queued = await row(rt, message_id)
    assert queued is not None and queued.body_html is not None
    assert CODE not in queued.body_text and CODE not in queued.body_html
    async with rt.sessions() as session:
        # The code expired before any worker came by.
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(expires_at=rt.clock.now() - timedelta(seconds=1))
        )
        await session.commit()
    async with running(rt):
        cancelled = await wait_status(rt, message_id, "cancelled")
    assert cancelled.body_text == "" and cancelled.body_html is None


async def test_code_cut_short_by_a_shutdown_is_not_sent_again(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime, outbox_lease_seconds=60)
    async with HttpSink(default=ScriptedResponse(201, {"sid": "SM2"})) as sink:
        sink.script(ScriptedResponse(201, {"sid": "SM1"}, delay=10))  # past the shutdown grace
        await configure(
            rt,
            tenant,
            "sms",
            "twilio",
            {
                "account_sid": SID,
                "auth_token": "t" * 32,
                "from_number": "+15005550006",
                "base_url": sink.url,
            },
        )
        worker = DeliveryWorker(rt, shutdown_grace=0.1)
        task = asyncio.create_task(worker.run())
        message_id = await queue(rt, tenant.id)
        await sink.wait_for_requests(1, timeout=5)
        worker.stop()
        await asyncio.wait_for(task, 5)
        released = await row(rt, message_id)
        assert released is not None and released.status == OutboxStatus.POSSIBLY_SENT
        async with running(rt):
            for _ in range(5):
                rt.outbox_wakeup.set()
                await asyncio.sleep(rt.settings.outbox_poll_seconds * 2)
        assert len(sink.requests) == 1
