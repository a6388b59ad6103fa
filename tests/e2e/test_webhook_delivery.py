"""Events reach webhook endpoints from the real `crm serve` process and its worker, signed, on
both databases: a Back-Office create, the seed's sign-up, retries after failures, a restart
after kill -9, and no event crossing a tenant or a mode."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from crm.messaging.models import OutboxMessage
from crm.messaging.providers.webhook import verify_webhook_signature
from crm.runtime import Runtime
from crm.tenants import service as tenants
from crm.tenants.schemas import CreatedTenant
from tests.support.http_sink import HttpSink, RecordedRequest, ScriptedResponse
from tests.support.selfservice import SEED_REGISTER, last_code, unique_phone
from tests.support.server import CrmProcess

DEADLINE = 5.0
ENV = {
    "CRM_OUTBOX_POLL_SECONDS": "0.1",
    "CRM_WEBHOOK_BACKOFF_BASE_SECONDS": "0.2",
    "CRM_WEBHOOK_BACKOFF_MAX_SECONDS": "0.5",
}


class Failing:
    """Answers 500 to the first `failures` requests of each path listed, then 200."""

    def __init__(self) -> None:
        self.failures: dict[str, int] = {}
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> ScriptedResponse | None:
        with self.lock:
            self.seen[request.route] += 1
            if self.seen[request.route] <= self.failures.get(request.route, 0):
                return ScriptedResponse(500, "down")
        return None


@pytest.fixture(scope="module")
def failing() -> Failing:
    return Failing()


@pytest.fixture(scope="module")
def sink(failing: Failing) -> Iterator[HttpSink]:
    with HttpSink(responder=failing) as running:
        yield running


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, sink: HttpSink
) -> Iterator[CrmProcess]:
    with CrmProcess.serve(tmp_path_factory.mktemp("serve"), database_url, **ENV) as process:
        yield process


@pytest.fixture
async def api(server: CrmProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
        yield client


async def new_tenant(runtime: Runtime) -> CreatedTenant:
    async with runtime.sessions() as session:
        created = await tenants.create_tenant(session, runtime.clock, f"Hooks {time.time_ns()}")
        await session.commit()
    return created


async def add_endpoint(
    api: httpx.AsyncClient,
    tenant: CreatedTenant,
    url: str,
    mode: str = "live",
    events: list[str] | None = None,
) -> dict[str, Any]:
    response = await api.post(
        "/backoffice/v1/webhooks",
        json={"url": url, "events": events or ["*"]},
        headers={"api_key": tenant.keys[f"secret_{mode}"]},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_for(sink: HttpSink, route: str, event_type: str) -> RecordedRequest:
    """The first request to `route` carrying `event_type`, within DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for request in sink.requests:
            if request.route == route and request.json()["type"] == event_type:
                return request
        await asyncio.sleep(0.05)
    seen = [r.json()["type"] for r in sink.requests if r.route == route]
    raise AssertionError(f"{event_type} not delivered to {route} in {DEADLINE}s; got {seen}")


def verified(request: RecordedRequest, secret: str) -> bool:
    return verify_webhook_signature(secret, request.header("X-CRM-Signature"), request.body)


def at(sink: HttpSink, route: str) -> list[RecordedRequest]:
    return [r for r in sink.requests if r.route == route]


async def test_backoffice_create_and_seed_signup_are_delivered_signed_and_kept_apart(
    api: httpx.AsyncClient, runtime: Runtime, sink: HttpSink
) -> None:
    tenant, other = await new_tenant(runtime), await new_tenant(runtime)
    live = await add_endpoint(api, tenant, sink.url_for(f"/{tenant.id}/live"))
    test = await add_endpoint(api, tenant, sink.url_for(f"/{tenant.id}/test"), mode="test")
    await add_endpoint(api, other, sink.url_for(f"/{other.id}/live"))
    await add_endpoint(api, other, sink.url_for(f"/{other.id}/test"), mode="test")

    created = await api.post(
        "/backoffice/v1/contacts",
        json={"first_name": "Ann"},
        headers={"api_key": tenant.keys["secret_live"]},
    )
    assert created.status_code == 201, created.text
    request = await wait_for(sink, f"/{tenant.id}/live", "contact.created")
    assert verified(request, live["secret"])
    assert not verified(request, test["secret"])
    event = request.json()
    assert event["mode"] == "live"
    assert event["data"]["contact"]["id"] == created.json()["id"]
    assert request.header("X-CRM-Event-Id") == event["id"]

    # The seed's sign-up: register, then validate the code sent (test keys, test mode).
    body = {**SEED_REGISTER, "identity": {**SEED_REGISTER["identity"]}}
    body["identity"]["phone_number"] = unique_phone()
    public = {"api_key": tenant.keys["public_test"]}
    sent = await api.post("/self-service/v1/contacts/register", json=body, headers=public)
    assert sent.status_code == 201, sent.text
    code = await last_code(runtime, tenant.id)
    validated = await api.post(
        "/self-service/v2/contacts/validate_otp",
        json={"auth_otp": sent.json()["auth_otp"], "code": code},
        headers=public,
    )
    assert validated.status_code == 200, validated.text
    contact_id = validated.json()["contact"]["id"]
    for event_type in ("contact.created", "identity.verified", "session.started"):
        delivered = await wait_for(sink, f"/{tenant.id}/test", event_type)
        assert verified(delivered, test["secret"])
        document = delivered.json()
        assert document["mode"] == "test"
        assert document["data"]["contact"]["id"] == contact_id
        # Never a code, token or password in an event.
        assert code not in delivered.body.decode()
        assert validated.json()["access_token"] not in delivered.body.decode()

    # Nothing crossed: the live endpoint saw only the live change; the other tenant nothing.
    assert [r.json()["type"] for r in at(sink, f"/{tenant.id}/live")] == ["contact.created"]
    assert at(sink, f"/{other.id}/live") == [] and at(sink, f"/{other.id}/test") == []


async def test_a_failing_endpoint_gets_the_event_once_more_after_each_failure(
    api: httpx.AsyncClient, runtime: Runtime, sink: HttpSink, failing: Failing
) -> None:
    tenant = await new_tenant(runtime)
    route = f"/retry/{tenant.id}"
    failing.failures[route] = 3
    endpoint = await add_endpoint(api, tenant, sink.url_for(route), events=["contact.created"])
    created = await api.post(
        "/backoffice/v1/contacts",
        json={"first_name": "Bea"},
        headers={"api_key": tenant.keys["secret_live"]},
    )
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 4 * DEADLINE
    status = None
    while time.monotonic() < deadline:
        async with runtime.sessions() as session:
            status = await session.scalar(
                select(OutboxMessage.status).where(OutboxMessage.recipient == endpoint["id"])
            )
        if status == "sent":
            break
        await asyncio.sleep(0.05)
    assert status == "sent"
    received = at(sink, route)
    # Three 500s, each followed by exactly one more try; after the 200 the row is closed.
    assert len(received) == 4
    assert len({r.header("X-CRM-Event-Id") for r in received}) == 1
    assert all(verified(r, endpoint["secret"]) for r in received)
    log = await api.get(
        f"/backoffice/v1/webhooks/{endpoint['id']}/deliveries",
        headers={"api_key": tenant.keys["secret_live"]},
    )
    assert log.status_code == 200
    attempts = log.json()["content"]
    assert [a["status_code"] for a in attempts] == [200, 500, 500, 500]
    assert [a["outcome"] for a in attempts] == ["sent", "retry", "retry", "retry"]
    assert all("body" not in a for a in attempts)


async def test_an_event_committed_before_kill_9_is_delivered_after_restart(
    tmp_path: Path, database_url: str, runtime: Runtime
) -> None:
    # The first answer is held, so the kill lands while the endpoint has the request and the
    # outcome was never recorded.
    async with HttpSink() as held:
        held.script(ScriptedResponse(200, {}, delay=30))
        process = CrmProcess.serve(tmp_path, database_url, CRM_OUTBOX_LEASE_SECONDS="3", **ENV)
        process.start()
        try:
            tenant = await new_tenant(runtime)
            async with httpx.AsyncClient(base_url=process.base_url, timeout=10.0) as api:
                endpoint = await add_endpoint(api, tenant, held.url_for("/kill"))
                created = await api.post(
                    "/backoffice/v1/contacts",
                    json={"first_name": "Cy"},
                    headers={"api_key": tenant.keys["secret_live"]},
                )
                assert created.status_code == 201, created.text
            await held.wait_for_requests(1, timeout=DEADLINE)
            process.kill()
            process.start()
            requests = await held.wait_for_requests(2, timeout=15)
        finally:
            process.stop()
    first, again = requests[0], requests[1]
    assert first.header("X-CRM-Event-Id") == again.header("X-CRM-Event-Id")
    assert again.json()["type"] == "contact.created"
    assert verified(again, endpoint["secret"])
