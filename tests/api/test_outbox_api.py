"""GET /backoffice/v1/outbox (test mode's sent messages) and GET /metrics."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import delete, func, select

from crm.messaging.models import OutboxMessage
from crm.messaging.outbox import enqueue
from crm.messaging.templates import render
from crm.runtime import Runtime
from crm.tenants import service as tenants
from crm.tenants.schemas import CreatedTenant

URL = "/backoffice/v1/outbox"


async def put_message(
    runtime: Runtime,
    tenant_id: str,
    *,
    mode: str = "test",
    channel: str = "SMS",
    recipient: str = "+35799000001",
    purpose: str = "OTP",
    code: str = "111111",
) -> str:
    if purpose == "OTP":
        message = render(
            purpose, channel, language="en", tenant_name="Acme", code=code, ttl_minutes=5
        )
    else:
        message = render(
            purpose,
            "EMAIL",
            language="en",
            tenant_name="Acme",
            link_or_token=f"tok-{code}",
            ttl_minutes=60,
        )
    async with runtime.sessions() as session:
        message_id = await enqueue(
            session,
            runtime.clock,
            secret=runtime.secret,
            tenant_id=tenant_id,
            mode=mode,
            channel=channel,
            recipient=recipient,
            purpose=purpose,
            message=message,
        )
        await session.commit()
    return message_id


def key(tenant: CreatedTenant, label: str = "secret_test") -> dict[str, str]:
    return {"api_key": tenant.keys[label]}


async def test_lists_test_messages_newest_first_with_paging(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    first = await put_message(runtime, tenant.id, code="111111")
    second = await put_message(
        runtime, tenant.id, channel="EMAIL", recipient="ann@example.com", code="222222"
    )
    third = await put_message(runtime, tenant.id, code="333333")

    page1 = await client.get(URL, headers=key(tenant), params={"size": 2})
    assert page1.status_code == 200, page1.text
    body = page1.json()
    assert body["paging"] == {"page": 1, "size": 2, "total": 3, "has_more": True}
    assert [m["id"] for m in body["content"]] == [third, second]
    newest = body["content"][0]
    assert newest["recipient"] == "+35799000001" and newest["purpose"] == "OTP"
    assert "333333" in newest["body"] and newest["subject"] is None
    assert isinstance(newest["created_at"], int)
    email = body["content"][1]
    assert email["channel"] == "EMAIL" and email["subject"] and "222222" in email["body"]

    page2 = (await client.get(URL, headers=key(tenant), params={"size": 2, "page": 2})).json()
    assert page2["paging"] == {"page": 2, "size": 2, "total": 3, "has_more": False}
    assert [m["id"] for m in page2["content"]] == [first]


async def test_filters_by_recipient_and_purpose(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    wanted = await put_message(runtime, tenant.id, recipient="+35799000002")
    await put_message(runtime, tenant.id, recipient="+35799000003")
    reset = await put_message(
        runtime, tenant.id, channel="EMAIL", recipient="bob@example.com", purpose="PASSWORD_RESET"
    )
    by_phone = (
        await client.get(URL, headers=key(tenant), params={"recipient": "+35799000002"})
    ).json()
    assert [m["id"] for m in by_phone["content"]] == [wanted]
    # An unencoded `+` arrives as a space; it still means the E.164 number.
    raw = await client.get(f"{URL}?recipient=+35799000002", headers=key(tenant))
    assert [m["id"] for m in raw.json()["content"]] == [wanted]
    by_purpose = (
        await client.get(URL, headers=key(tenant), params={"purpose": "password_reset"})
    ).json()
    assert [m["id"] for m in by_purpose["content"]] == [reset]
    bad = await client.get(URL, headers=key(tenant), params={"purpose": "SPAM"})
    assert bad.status_code == 400 and bad.json()["details"][0]["field"] == "purpose"


async def test_live_messages_and_other_tenants_are_not_listed(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    async with runtime.sessions() as session:
        other = await tenants.create_tenant(session, runtime.clock, "Other Ltd")
        await session.commit()
    mine = await put_message(runtime, tenant.id)
    await put_message(runtime, other.id)
    live = await put_message(runtime, tenant.id, mode="live")
    try:
        body = (await client.get(URL, headers=key(tenant))).json()
        assert [m["id"] for m in body["content"]] == [mine]
        assert body["paging"]["total"] == 1
    finally:
        await drop(runtime, live)  # no queued live message may outlive the test


async def test_live_and_public_keys_are_refused(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    live = await client.get(URL, headers=key(tenant, "secret_live"))
    assert live.status_code == 403 and live.json()["code"] == "TEST_KEY_REQUIRED"
    public = await client.get(URL, headers=key(tenant, "public_test"))
    assert public.status_code == 403 and public.json()["code"] == "WRONG_KEY_KIND"
    assert (await client.get(URL)).status_code == 401


async def test_paging_parameters_are_validated(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    for params in ({"size": 0}, {"size": 101}, {"page": 0}, {"page": "x"}):
        response = await client.get(URL, headers=key(tenant), params=params)
        assert response.status_code == 400, params


async def test_huge_page_is_400_not_a_database_overflow(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    for page in ("10001", "9223372036854775807", "99999999999999999999"):
        response = await client.get(URL, headers=key(tenant), params={"page": page, "size": 100})
        assert response.status_code == 400, (page, response.text)
        assert response.json()["details"][0]["field"] == "page"


async def drop(runtime: Runtime, message_id: str) -> None:
    async with runtime.sessions() as session:
        await session.execute(delete(OutboxMessage).where(OutboxMessage.id == message_id))
        await session.commit()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the series `name` with exactly these labels, in whatever order printed."""
    for match in re.finditer(rf"^{re.escape(name)}(?:{{(.*)}})? (\S+)$", text, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1) or ""))
        if found == labels:
            return float(match.group(2))
    return None


async def test_metrics_count_outbox_from_the_database_and_http_requests(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    await client.get(URL, headers=key(tenant))
    live = await put_message(runtime, tenant.id, mode="live")
    try:
        response = await client.get("/metrics")
        async with runtime.sessions() as session:
            queued = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(
                    OutboxMessage.mode == "live",
                    OutboxMessage.channel == "SMS",
                    OutboxMessage.status == "queued",
                )
            )
    finally:
        await drop(runtime, live)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert queued and sample(text, "crm_outbox_messages", channel="SMS", status="queued") == queued
    assert sample(text, "crm_outbox_messages", channel="EMAIL", status="failed") is not None
    # Every status has its series, possibly sent codes included, so an alert can watch it.
    assert sample(text, "crm_outbox_messages", channel="SMS", status="possibly_sent") is not None
    assert sample(text, "crm_outbox_gauges_up") == 1
    requests = sample(text, "crm_http_requests_total", method="GET", route=URL, status="200")
    assert requests is not None and requests >= 1
    assert "# TYPE crm_http_request_duration_seconds histogram" in text
    # The histogram counts every status of the route; the counter above only the 200s.
    observed = sample(text, "crm_http_request_duration_seconds_count", method="GET", route=URL)
    assert observed is not None and observed >= requests
    assert (
        sample(text, "crm_http_request_duration_seconds_bucket", method="GET", route=URL, le="+Inf")
        == observed
    )
    # Test-mode messages never count as deliveries, and no code appears in the metrics: as a
    # number of its own (a duration like 2.6151111110 holds the digits by chance).
    assert re.search(r"(?<![\d.])111111(?!\d)", text) is None


async def test_test_mode_bodies_are_sealed_at_rest_and_readable_through_the_test_outbox(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    message_id = await put_message(runtime, tenant.id, code="654321")
    async with runtime.sessions() as session:
        row = await session.get(OutboxMessage, message_id)
    assert row is not None and row.status == "sent"
    assert "654321" not in row.body_text and row.body_text.startswith("v1.")
    listed = (await client.get(URL, headers=key(tenant))).json()["content"]
    assert [(m["id"], m["status"]) for m in listed] == [(message_id, "sent")]
    assert "654321" in listed[0]["body"]
    # Live keys never list bodies, not even sealed ones.
    live = await client.get(URL, headers=key(tenant, "secret_live"))
    assert live.status_code == 403 and "654321" not in live.text
