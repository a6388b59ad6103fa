"""SMS pumping defence over HTTP: a sweep of 200 registrations to one country's numbers is
stopped by each defence in turn, and nothing is queued past the limit."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from crm.app import create_app
from crm.contacts.models import Contact
from crm.messaging.models import OutboxMessage
from crm.metrics import REGISTRY
from crm.runtime import Runtime
from crm.tenants import service as tenants
from crm.tenants.schemas import CreatedTenant
from tests.conftest import base_settings
from tests.support.selfservice import SEED_REGISTER, last_code, set_policy, unique_email

SWEEP = 200
V1 = "/self-service/v1"
V2 = "/self-service/v2"


def live(tenant: CreatedTenant) -> dict[str, str]:
    return {"api_key": tenant.keys["public_live"]}


def sandbox(tenant: CreatedTenant) -> dict[str, str]:
    """The public test key: test mode, where nothing is sent."""
    return {"api_key": tenant.keys["public_test"]}


@pytest.fixture
def configure(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the request path under other CRM_SMS_* values (the per-client registration cap is
    lifted: a sweep from one address is what the SMS defences must stop on their own)."""

    def apply(**values: Any) -> None:
        settings = base_settings(
            database_url=runtime.settings.database_url,
            register_limit_per_client_hour=100_000,
            **values,
        )
        monkeypatch.setattr(runtime, "settings", settings)

    apply()
    return apply


async def _register(
    client: httpx.AsyncClient, headers: dict[str, str], number: str, country: str = "CYP"
) -> httpx.Response:
    body = {**SEED_REGISTER, "identity": {"provider": "PHONE", "phone_number": number}}
    body["identity"]["country_code"] = country
    return await client.post(f"{V1}/contacts/register", json=body, headers=headers)


async def _sweep(
    client: httpx.AsyncClient, headers: dict[str, str], first: int = 99_100_000
) -> list[httpx.Response]:
    """SWEEP registrations to consecutive Cypriot numbers, as a pumping run makes them."""
    return [await _register(client, headers, str(first + i)) for i in range(SWEEP)]


async def _outbox(runtime: Runtime, tenant_id: str, channel: str = "SMS") -> int:
    async with runtime.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.tenant_id == tenant_id, OutboxMessage.channel == channel)
        )
        return int(count or 0)


async def _contacts(runtime: Runtime, tenant_id: str) -> int:
    async with runtime.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Contact).where(Contact.tenant_id == tenant_id)
        )
        return int(count or 0)


def _stopped_after(responses: list[httpx.Response], allowed: int, status: int, code: str) -> None:
    """The first `allowed` went through; every later one was refused with `code`."""
    assert [r.status_code for r in responses[:allowed]] == [201] * allowed
    refused = responses[allowed:]
    assert [r.status_code for r in refused] == [status] * len(refused)
    assert {r.json()["code"] for r in refused} == {code}


async def _set_daily_limit(runtime: Runtime, tenant: CreatedTenant, limit: int) -> None:
    async with runtime.sessions() as session:
        await tenants.update_tenant_settings(session, tenant.id, {"sms_daily_limit": limit})
        await session.commit()


async def test_sweep_is_stopped_by_sms_countries_before_anything_is_written(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, configure: Any
) -> None:
    await set_policy(runtime, tenant, sms_countries="GRC")
    before = REGISTRY.sms_blocked.value("country_not_allowed")
    responses = await _sweep(client, live(tenant))
    _stopped_after(responses, 0, 400, "COUNTRY_NOT_ALLOWED")
    assert "GRC" in responses[0].json()["message"]
    assert await _outbox(runtime, tenant.id) == 0
    assert await _contacts(runtime, tenant.id) == 0
    assert REGISTRY.sms_blocked.value("country_not_allowed") - before == SWEEP
    # The allowed country still registers.
    allowed = await _register(client, live(tenant), "6912345678", "GRC")
    assert allowed.status_code == 201, allowed.text
    assert await _outbox(runtime, tenant.id) == 1


async def test_sms_countries_also_bind_sign_in_codes_to_existing_numbers(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, configure: Any
) -> None:
    assert (await _register(client, sandbox(tenant), "99200001")).status_code == 201
    await set_policy(runtime, tenant, sms_countries="GRC,ITA", otp_resend_cooldown_seconds=0)
    response = await client.post(
        f"{V2}/contacts/otp",
        json={"method": "SMS", "credentials": [{"name": "PHONE", "value": "+35799200001"}]},
        headers=sandbox(tenant),
    )
    assert response.status_code == 400
    assert response.json()["code"] == "COUNTRY_NOT_ALLOWED"
    assert await _outbox(runtime, tenant.id) == 1
    # A number nobody registered is answered the same way, or the refusal would tell who is a
    # customer.
    unknown = await client.post(
        f"{V2}/contacts/otp",
        json={"method": "SMS", "credentials": [{"name": "PHONE", "value": "+35799200002"}]},
        headers=sandbox(tenant),
    )
    assert (unknown.status_code, unknown.json()["code"]) == (400, "COUNTRY_NOT_ALLOWED")


async def test_sweep_is_stopped_by_the_daily_budget(
    client: httpx.AsyncClient,
    runtime: Runtime,
    tenant: CreatedTenant,
    configure: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure(sms_range_mode="off", sms_conversion_mode="off")
    await _set_daily_limit(runtime, tenant, 25)
    before = REGISTRY.sms_blocked.value("daily_limit")
    with caplog.at_level(logging.WARNING, logger="crm.smsguard"):
        responses = await _sweep(client, live(tenant))
    _stopped_after(responses, 25, 429, "SMS_DAILY_LIMIT_REACHED")
    retry_after = {int(r.headers["Retry-After"]) for r in responses[25:]}
    assert all(1 <= seconds <= 86_401 for seconds in retry_after)
    assert await _outbox(runtime, tenant.id) == 25
    assert await _contacts(runtime, tenant.id) == 25
    assert REGISTRY.sms_blocked.value("daily_limit") - before == SWEEP - 25
    # The 80% warning fired once, at the 20th SMS, and the gauge shows the budget used up.
    warnings = [r for r in caplog.records if r.getMessage() == "SMS daily budget 80% used"]
    assert [getattr(r, "count", None) for r in warnings] == [20]
    assert REGISTRY.sms_daily_used.value(tenant.id, "live") == 1.0


async def test_daily_budget_is_per_mode_and_spares_email_codes(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, configure: Any
) -> None:
    await _set_daily_limit(runtime, tenant, 0)
    refused = await _register(client, sandbox(tenant), "99300001")
    assert refused.status_code == 429
    assert refused.json()["code"] == "SMS_DAILY_LIMIT_REACHED"
    assert await _outbox(runtime, tenant.id) == 0
    by_email = await client.post(
        f"{V1}/contacts/register",
        json={**SEED_REGISTER, "identity": {"provider": "EMAIL", "email": unique_email()}},
        headers=sandbox(tenant),
    )
    assert by_email.status_code == 201, by_email.text
    assert await _outbox(runtime, tenant.id, "EMAIL") == 1
    assert await _outbox(runtime, tenant.id, "SMS") == 0


async def test_daily_budget_defaults_to_the_deployment_setting(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, configure: Any
) -> None:
    configure(sms_daily_limit=3)
    codes = [
        (await _register(client, sandbox(tenant), f"9940000{i}")).status_code for i in range(5)
    ]
    assert codes == [201, 201, 201, 429, 429]
    # The tenant's own setting wins over the deployment's.
    await _set_daily_limit(runtime, tenant, 4)
    assert (await _register(client, sandbox(tenant), "99400009")).status_code == 201
    assert await _outbox(runtime, tenant.id) == 4


async def test_sweep_is_stopped_by_the_number_range_cap(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, configure: Any
) -> None:
    configure(sms_conversion_mode="off")
    before = REGISTRY.sms_blocked.value("number_range")
    responses = await _sweep(client, live(tenant))
    _stopped_after(responses, 10, 429, "SMS_RANGE_THROTTLED")
    assert all(1 <= int(r.headers["Retry-After"]) <= 3601 for r in responses[10:])
    assert await _outbox(runtime, tenant.id) == 10
    assert REGISTRY.sms_blocked.value("number_range") - before == SWEEP - 10
    # A number in another range of the same country is not held back by the run.
    assert (await _register(client, live(tenant), "99777001")).status_code == 201


async def test_number_range_cap_leaves_test_keys_alone(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, configure: Any
) -> None:
    # Test keys send nothing, so integrators' test suites may register number after number.
    statuses = {
        (await _register(client, sandbox(tenant), f"995000{i:02d}")).status_code for i in range(15)
    }
    assert statuses == {201}


async def _prove_last_code(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, auth_otp: str
) -> None:
    response = await client.post(
        f"{V2}/contacts/validate_otp",
        json={"auth_otp": auth_otp, "code": await last_code(runtime, tenant.id)},
        headers=live(tenant),
    )
    assert response.status_code == 200, response.text


async def test_sweep_is_stopped_by_the_conversion_watch(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, configure: Any
) -> None:
    configure(sms_range_mode="off", sms_conversion_min_sends=20, sms_conversion_min_rate=0.5)
    # Genuine customers first: 30 codes sent and entered keep the country open.
    for i in range(30):
        sent = await _register(client, live(tenant), f"9660{i:04d}")
        assert sent.status_code == 201, sent.text
        await _prove_last_code(client, runtime, tenant, sent.json()["auth_otp"])
    before = REGISTRY.sms_blocked.value("low_conversion")
    responses = await _sweep(client, live(tenant))
    # Codes go out while at least half of those sent were entered: 30 of 60 still is, so the
    # 31st of the sweep is the last one sent.
    _stopped_after(responses, 31, 429, "SMS_COUNTRY_THROTTLED")
    assert await _outbox(runtime, tenant.id) == 61
    assert REGISTRY.sms_blocked.value("low_conversion") - before == SWEEP - 31
    # Another country is judged on its own.
    assert (await _register(client, live(tenant), "6912345670", "GRC")).status_code == 201


async def test_record_only_mode_counts_and_logs_but_sends(
    client: httpx.AsyncClient,
    runtime: Runtime,
    tenant: CreatedTenant,
    configure: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure(
        sms_range_mode="record",
        sms_conversion_mode="record",
        sms_conversion_min_sends=20,
    )
    blocked = (
        REGISTRY.sms_blocked.value("low_conversion"),
        REGISTRY.sms_blocked.value("number_range"),
    )
    would = (
        REGISTRY.sms_would_block.value("low_conversion"),
        REGISTRY.sms_would_block.value("number_range"),
    )
    with caplog.at_level(logging.WARNING, logger="crm.smsguard"):
        responses = await _sweep(client, live(tenant))
    assert {r.status_code for r in responses} == {201}
    assert await _outbox(runtime, tenant.id) == SWEEP
    assert REGISTRY.sms_would_block.value("low_conversion") - would[0] == SWEEP - 20
    assert REGISTRY.sms_would_block.value("number_range") - would[1] == SWEEP - 10
    assert REGISTRY.sms_blocked.value("low_conversion") == blocked[0]
    assert REGISTRY.sms_blocked.value("number_range") == blocked[1]
    logged = [r for r in caplog.records if r.getMessage() == "SMS would be refused (record-only)"]
    assert len(logged) == (SWEEP - 20) + (SWEEP - 10)
    # The log names the country and range, never the whole number.
    assert {getattr(r, "number_range", None) for r in logged} >= {"+35799100"}
    assert not any("+35799100150" in str(r.__dict__) for r in logged)


async def test_blocked_sms_are_counted_in_metrics_by_reason(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, configure: Any
) -> None:
    await set_policy(runtime, tenant, sms_countries="GRC")
    await _register(client, live(tenant), "99800001")
    text = (await client.get("/metrics")).text
    assert "# TYPE crm_sms_blocked_total counter" in text
    assert 'crm_sms_blocked_total{reason="country_not_allowed"}' in text


async def test_daily_budget_holds_across_processes(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, configure: Any
) -> None:
    """Two server processes (each its own runtime and connection pool) share one budget."""
    await _set_daily_limit(runtime, tenant, 5)
    other = Runtime.build(runtime.settings)
    try:
        transport = httpx.ASGITransport(app=create_app(other.settings, runtime=other))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as second:
            statuses = []
            for i in range(4):
                statuses.append(
                    (await _register(client, sandbox(tenant), f"9991000{i}")).status_code
                )
                statuses.append(
                    (await _register(second, sandbox(tenant), f"9992000{i}")).status_code
                )
    finally:
        await other.close()
    assert statuses.count(201) == 5
    assert statuses[5:] == [429, 429, 429]
    assert await _outbox(runtime, tenant.id) == 5
