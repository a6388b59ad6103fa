"""Per-client limits as application settings: the setting changes the limit, and the limit holds."""

from __future__ import annotations

from typing import Any

import pytest

from crm.clock import FrozenClock
from tests.support.selfservice import key, register_phone, set_policy, unique_email, unique_phone

V2 = "/self-service/v2"


@pytest.fixture(autouse=True)
def _frozen(runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # One window for the whole test: no limit may reset half-way through by the clock.
    monkeypatch.setattr(runtime, "clock", FrozenClock())


async def _sign_in(client: Any, tenant: Any) -> Any:
    body = {"provider": "EMAIL", "username": unique_email(), "password": "not the password"}
    return await client.post(f"{V2}/contacts/authenticate", json=body, headers=key(tenant))


async def _request_code(client: Any, tenant: Any) -> Any:
    body = {"method": "SMS", "credentials": [{"name": "PHONE", "value": f"+357{unique_phone()}"}]}
    return await client.post(f"{V2}/contacts/otp", json=body, headers=key(tenant))


async def _validate(client: Any, tenant: Any) -> Any:
    body = {"credentials": [{"name": "PHONE", "value": f"+357{unique_phone()}"}], "code": "123456"}
    return await client.post(f"{V2}/contacts/validate_otp", json=body, headers=key(tenant))


async def _forgot(client: Any, tenant: Any) -> Any:
    body = {"username": unique_email()}
    return await client.post(f"{V2}/contacts/forgot_password", json=body, headers=key(tenant))


async def _exists(client: Any, tenant: Any) -> Any:
    params = {"email_address": unique_email()}
    return await client.get(f"{V2}/contacts", params=params, headers=key(tenant))


async def _register(client: Any, tenant: Any) -> Any:
    body = {
        "first_name": "Ahmed",
        "identity": {"provider": "PHONE", "phone_number": unique_phone(), "country_code": "CYP"},
    }
    return await client.post(f"{V2}/contacts/register", json=body, headers=key(tenant))


OPERATIONS = {
    "signin_limit_per_client_minute": _sign_in,
    "otp_request_limit_per_client_minute": _request_code,
    "otp_validate_limit_per_client_minute": _validate,
    "password_reset_limit_per_client_minute": _forgot,
    "contact_exists_limit_per_client_minute": _exists,
    "register_limit_per_client_hour": _register,
}


@pytest.mark.parametrize("setting", list(OPERATIONS))
async def test_application_setting_sets_the_per_client_limit(
    client: Any, runtime: Any, tenant: Any, setting: str
) -> None:
    operation = OPERATIONS[setting]
    await set_policy(runtime, tenant, **{setting: 3})
    # A sweep: every try names another identity, known or not, and each one counts.
    statuses = [(await operation(client, tenant)).status_code for _ in range(3)]
    assert 429 not in statuses
    refused = await operation(client, tenant)
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "RATE_LIMITED"
    assert int(refused.headers["retry-after"]) >= 1


async def test_deployment_default_applies_until_the_application_sets_its_own(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.settings, "otp_request_limit_per_client_minute", 2)
    assert [await _limited(_request_code, client, tenant) for _ in range(3)] == [False, False, True]
    # Raised for this application (a portal behind one office address): counting goes on from
    # the two that were let through (a refused request is not counted).
    await set_policy(runtime, tenant, otp_request_limit_per_client_minute=4)
    assert [await _limited(_request_code, client, tenant) for _ in range(3)] == [False, False, True]


async def _limited(operation: Any, client: Any, tenant: Any) -> bool:
    return bool((await operation(client, tenant)).status_code == 429)


async def test_raising_a_limit_does_not_lift_the_others(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await set_policy(
        runtime,
        tenant,
        signin_limit_per_client_minute=100,
        otp_validate_limit_per_client_minute=1,
    )
    assert (await _validate(client, tenant)).status_code != 429
    assert (await _validate(client, tenant)).status_code == 429
    assert (await _sign_in(client, tenant)).status_code != 429


async def test_refused_registration_writes_and_sends_nothing(
    client: Any, runtime: Any, tenant: Any
) -> None:
    from tests.support.selfservice import messages

    await set_policy(runtime, tenant, register_limit_per_client_hour=1)
    await register_phone(client, tenant)
    refused = await _register(client, tenant)
    assert refused.status_code == 429
    assert len(await messages(runtime, tenant.id, "OTP")) == 1
