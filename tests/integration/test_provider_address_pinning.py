"""Tenant providers connect to the very address their check passed: no DNS-rebinding window."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from crm.messaging.providers import netguard
from crm.messaging.providers.base import OutgoingMessage
from crm.messaging.providers.netguard import AddressNotAllowed, guarded_client
from crm.messaging.providers.smtp import SmtpConfig, SmtpProvider
from crm.runtime import Runtime
from crm.tenants.schemas import CreatedTenant
from tests.integration.test_outbox_delivery import (
    WEBHOOK_SECRET,
    configure,
    fast,
    queue,
    running,
    wait_status,
)
from tests.support.http_sink import HttpSink, ScriptedResponse, free_port

NAME = "sms.provider.test"
# Stands in for a public address: a second loopback address the tests declare public.
PUBLIC = "127.0.0.2"
LIMITS = httpx.Limits(max_connections=4)


@pytest.fixture
def name_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """NAME answers PUBLIC to its first lookup and 127.0.0.1 to every later one (a rebinding
    name server); PUBLIC counts as a public address. Yields the log of looked-up names."""
    asked: list[str] = []
    real_is_internal = netguard.is_internal
    real_lookup = netguard.lookup

    async def lookup(name: str, port: int | None) -> list[str]:
        if name != NAME:
            return await real_lookup(name, port)
        asked.append(name)
        return [PUBLIC] if len(asked) == 1 else ["127.0.0.1"]

    def is_internal(address: Any) -> bool:
        return address != ipaddress.ip_address(PUBLIC) and real_is_internal(address)

    monkeypatch.setattr(netguard, "lookup", lookup)
    monkeypatch.setattr(netguard, "is_internal", is_internal)
    yield asked


async def test_a_name_resolving_to_loopback_is_refused_before_connecting() -> None:
    async with HttpSink() as sink, guarded_client(LIMITS) as client:
        with pytest.raises(AddressNotAllowed):
            await client.post(f"http://localhost:{sink.port}/hook", content=b"{}")
        with pytest.raises(AddressNotAllowed):
            await client.post(f"{sink.url}/hook", content=b"{}")
        assert sink.requests == []


async def test_an_allowed_name_is_reached_at_the_checked_address_with_its_own_host_header(
    name_server: list[str],
) -> None:
    async with HttpSink(host=PUBLIC) as sink, guarded_client(LIMITS) as client:
        port = sink.port
        response = await client.post(f"http://{NAME}:{port}/hook", content=b"{}")
        assert response.status_code == 200
        (request,) = sink.requests
    assert request.header("host") == f"{NAME}:{port}"
    # One resolution served the check and the connection; the rebound answer never came into it.
    assert name_server == [NAME]


async def test_a_rebound_name_is_refused_on_the_next_connection(name_server: list[str]) -> None:
    async with HttpSink(host=PUBLIC) as sink, guarded_client(LIMITS) as client:
        first = await client.post(f"http://{NAME}:{sink.port}/hook", content=b"{}")
        assert first.status_code == 200
        # The sink speaks HTTP/1.0: a new connection, a new lookup, now answering loopback.
        with pytest.raises(AddressNotAllowed):
            await client.post(f"http://{NAME}:{sink.port}/hook", content=b"{}")
        assert len(sink.requests) == 1


async def test_worker_refuses_a_tenant_webhook_whose_name_resolves_to_loopback(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    async with HttpSink() as sink:
        # Stored while private addresses were allowed; the worker runs with them refused.
        await configure(
            fast(runtime),
            tenant,
            "sms",
            "webhook",
            {"url": f"http://localhost:{sink.port}/sms", "signing_secret": WEBHOOK_SECRET},
        )
        rt = fast(runtime, allow_private_provider_urls=False)
        async with running(rt):
            message_id = await queue(rt, tenant.id)
            failed = await wait_status(rt, message_id, "failed")
        assert sink.requests == []
    assert failed.attempts == 1
    assert "not a public internet address" in (failed.last_error or "")


async def test_worker_reaches_an_allowed_tenant_webhook_at_the_checked_address(
    runtime: Runtime, tenant: CreatedTenant, name_server: list[str]
) -> None:
    async with HttpSink(host=PUBLIC, default=ScriptedResponse(200, {"id": "wh-1"})) as sink:
        rt = fast(runtime, allow_private_provider_urls=False)
        await configure(
            rt,
            tenant,
            "sms",
            "webhook",
            {"url": f"http://{NAME}:{sink.port}/sms", "signing_secret": WEBHOOK_SECRET},
        )
        # The PUT's own check used the first answer; the worker's connection gets a fresh one.
        name_server.clear()
        async with running(rt):
            message_id = await queue(rt, tenant.id)
            await wait_status(rt, message_id, "sent")
        (request,) = sink.requests
        assert request.header("host") == f"{NAME}:{sink.port}"


MESSAGE = OutgoingMessage(
    id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    tenant_id="t1",
    channel="EMAIL",
    recipient="ann@example.com",
    subject="Your code",
    body_text="Your code is 123456.",
    body_html=None,
)


class _Handler:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def _smtp(host: str, port: int) -> SmtpProvider:
    config = SmtpConfig(host=host, port=port, from_address="no-reply@acme.example", starttls=False)
    return SmtpProvider(config, guarded=True)


async def test_guarded_smtp_refuses_a_name_resolving_to_loopback() -> None:
    handler = _Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ready_timeout=5)
    controller.start()
    try:
        with pytest.raises(AddressNotAllowed):
            await _smtp("localhost", controller.port).send(MESSAGE)
    finally:
        controller.stop()
    assert handler.envelopes == []


async def test_guarded_smtp_connects_to_the_checked_address(name_server: list[str]) -> None:
    handler = _Handler()
    controller = Controller(handler, hostname=PUBLIC, port=free_port(PUBLIC), ready_timeout=5)
    controller.start()
    try:
        await _smtp(NAME, controller.port).send(MESSAGE)
    finally:
        controller.stop()
    assert len(handler.envelopes) == 1
    assert name_server == [NAME]
