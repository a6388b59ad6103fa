"""The delivery worker with events, in process on both databases and a loopback sink: an endpoint
that keeps failing is disabled with a `webhook.disabled` event, a rotated secret signs alongside
the new one, and a message that exhausts its tries becomes `message.failed`."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import select

from crm.contacts import service as contacts
from crm.contacts.contact_fields import ContactFields
from crm.events import webhooks
from crm.events.models import Event, WebhookEndpoint
from crm.messaging.models import OutboxMessage
from crm.messaging.outbox import open_body
from crm.messaging.providers import verify_webhook_signature
from crm.operators import service as operators
from crm.operators.activity import CLI_ACTOR
from crm.runtime import Runtime
from crm.tenants.schemas import CallerKey, CreatedTenant
from tests.integration.test_outbox_delivery import fast, queue, running, webhook_for
from tests.support.http_sink import HttpSink, RecordedRequest, ScriptedResponse

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, limit: float = 10) -> T:
    deadline = time.monotonic() + limit
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def caller(tenant: CreatedTenant) -> CallerKey:
    return CallerKey(None, tenant.id, tenant.name, None, "secret", "live")


async def add_endpoint(rt: Runtime, tenant: CreatedTenant, url: str, events: list[str]) -> Any:
    async with rt.sessions() as session:
        created = await webhooks.create(
            session,
            settings=rt.settings,
            server_secret=rt.secret,
            clock=rt.clock,
            caller=caller(tenant),
            url=url,
            events=events,
            description=None,
        )
        await session.commit()
    return created


async def new_contact(rt: Runtime, tenant: CreatedTenant) -> Any:
    async with rt.sessions() as session:
        contact = await contacts.create(
            session,
            rt.clock,
            tenant_id=tenant.id,
            mode="live",
            fields=ContactFields(first_name="Ann"),
            source="BACK_OFFICE",
            actor="test",
        )
        await session.commit()
    rt.outbox_wakeup.set()
    return contact


async def events_of(rt: Runtime, tenant: CreatedTenant, event_type: str) -> list[Event]:
    async with rt.sessions() as session:
        rows = await session.scalars(
            select(Event).where(Event.tenant_id == tenant.id, Event.type == event_type)
        )
        return list(rows)


def routed(request: RecordedRequest) -> ScriptedResponse | None:
    return ScriptedResponse(500, "down") if request.route == "/bad" else None


async def test_an_endpoint_failing_too_long_is_disabled_and_the_others_are_told(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(
        runtime,
        webhook_backoff_base_seconds=0.05,
        webhook_backoff_max_seconds=0.1,
        webhook_disable_after_seconds=0,
    )
    owner, admin, former = (f"{who}-{secrets.token_hex(4)}@example.com" for who in "oaf")
    async with rt.sessions() as session:
        for email, role in ((owner, "owner"), (admin, "admin"), (former, "owner")):
            await operators.create_operator(
                session,
                rt.clock,
                tenant_id=tenant.id,
                email=email,
                role=role,
                password="correct horse battery staple 42",
                actor=CLI_ACTOR,
            )
        gone = await operators.get_operator(session, former)
        await operators.disable_operator(session, rt.clock, gone, actor=CLI_ACTOR)
        await session.commit()
    async with HttpSink(responder=routed) as sink:
        bad = await add_endpoint(rt, tenant, sink.url_for("/bad"), ["*"])
        good = await add_endpoint(rt, tenant, sink.url_for("/good"), ["webhook.disabled"])
        async with running(rt):
            await new_contact(rt, tenant)

            async def told() -> RecordedRequest | None:
                return next((r for r in sink.requests if r.route == "/good"), None)

            notice = await eventually(told, "webhook.disabled at the other endpoint")
    document = notice.json()
    assert document["type"] == "webhook.disabled"
    assert document["data"]["webhook"]["id"] == bad.endpoint.id
    assert verify_webhook_signature(good.secret, notice.header("X-CRM-Signature"), notice.body)
    async with rt.sessions() as session:
        row = await session.get(WebhookEndpoint, bad.endpoint.id)
        assert row is not None and row.enabled is False and row.disabled_reason
        # The active owner is emailed, once, in live mode; admins and disabled owners are not.
        notices = list(
            await session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.tenant_id == tenant.id,
                    OutboxMessage.purpose == "WEBHOOK_DISABLED",
                )
            )
        )
        assert [(m.recipient, m.channel, m.mode) for m in notices] == [(owner, "EMAIL", "live")]
        assert notices[0].subject == f"A webhook endpoint of {tenant.name} was disabled"
        # Live bodies are blanked once sent; one still queued names the endpoint, never a secret.
        body = open_body(rt.secret, notices[0].body_text) or ""
        assert not body or (bad.endpoint.url in body and bad.secret not in body)
    # The failing endpoint got the event twice (the first failure starts the streak, the
    # second ends it) and nothing after it was disabled.
    assert [r.json()["type"] for r in sink.requests if r.route == "/bad"] == [
        "contact.created",
        "contact.created",
    ]


async def test_a_rotated_secret_signs_next_to_the_new_one(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime)
    async with HttpSink() as sink:
        created = await add_endpoint(rt, tenant, sink.url_for("/hook"), ["contact.created"])
        async with rt.sessions() as session:
            rotated = await webhooks.rotate(
                session,
                server_secret=rt.secret,
                clock=rt.clock,
                caller=caller(tenant),
                endpoint_id=created.endpoint.id,
            )
            await session.commit()
        async with running(rt):
            await new_contact(rt, tenant)
            (request,) = await sink.wait_for_requests(1)
    header = request.header("X-CRM-Signature") or ""
    assert header.count("v1=") == 2
    for secret in (created.secret, rotated.secret):
        assert verify_webhook_signature(secret, header, request.body)
    assert not verify_webhook_signature("whsec_" + "z" * 40, header, request.body)


async def test_a_message_that_exhausts_its_tries_is_a_message_failed_event(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rt = fast(runtime, outbox_max_attempts=2)
    async with HttpSink(default=ScriptedResponse(503, "busy")) as sink:
        await webhook_for(rt, tenant, sink)
        contact = await new_contact(rt, tenant)
        message_id = await queue(rt, tenant.id)
        async with rt.sessions() as session:
            from crm.messaging.models import OutboxMessage

            row = await session.get(OutboxMessage, message_id)
            assert row is not None
            row.contact_pk = contact.pk
            await session.commit()
        async with running(rt):

            async def failed() -> list[Event]:
                return await events_of(rt, tenant, "message.failed")

            (event,) = await eventually(failed, "a message.failed event")
    assert event.data["contact"] == {"id": contact.id, "code": contact.code}
    assert event.data["message"] == {"id": message_id, "channel": "SMS", "purpose": "OTP"}
    assert "482913" not in str(event.data)
