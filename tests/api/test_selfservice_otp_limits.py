"""One-time code limits over HTTP: expiry, tries per code, cooldown, hourly cap, failure counter."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from crm.clock import FrozenClock
from crm.identities import service
from crm.identities.models import Identity
from tests.support.selfservice import key, last_code, register_phone, set_policy, unique_phone

V2 = "/self-service/v2"


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def _validate(client: Any, tenant: Any, auth_otp: str, code: str) -> Any:
    return await client.post(
        f"{V2}/contacts/validate_otp",
        json={"auth_otp": auth_otp, "code": code},
        headers=key(tenant),
    )


async def _send(client: Any, tenant: Any, number: str) -> Any:
    return await client.post(
        f"{V2}/contacts/otp",
        json={"method": "SMS", "credentials": [{"name": "PHONE", "value": f"+357{number}"}]},
        headers=key(tenant),
    )


async def _identity(runtime: Any, number: str) -> Identity:
    async with runtime.sessions() as session:
        found = await session.scalar(select(Identity).where(Identity.identifier == f"+357{number}"))
        assert found is not None
        return found


async def test_code_is_refused_after_expiry(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FrozenClock()
    monkeypatch.setattr(runtime, "clock", clock)
    sent = await register_phone(client, tenant)
    code = await last_code(runtime, tenant.id)
    clock.advance(301)
    response = await _validate(client, tenant, sent["auth_otp"], code)
    assert response.status_code == 400
    assert response.json()["code"] == "OTP_EXPIRED"


async def test_otp_message_expires_with_its_code(client: Any, runtime: Any, tenant: Any) -> None:
    from tests.support.selfservice import messages

    await register_phone(client, tenant)
    [message] = await messages(runtime, tenant.id, "OTP")
    assert message.channel == "SMS"
    assert message.contact_pk is not None
    assert 299 <= (message.expires_at - message.created_at).total_seconds() <= 300


async def test_five_wrong_tries_burn_the_code(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FrozenClock()
    monkeypatch.setattr(runtime, "clock", clock)
    sent = await register_phone(client, tenant)
    code = await last_code(runtime, tenant.id)
    for _ in range(5):
        response = await _validate(client, tenant, sent["auth_otp"], _wrong(code))
        assert response.status_code == 400
        assert response.json()["code"] == "OTP_INVALID"
    # Five failures also delay this client (5 s); past the delay the code is still spent.
    throttled = await _validate(client, tenant, sent["auth_otp"], code)
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "CLIENT_THROTTLED"
    clock.advance(6)
    response = await _validate(client, tenant, sent["auth_otp"], code)
    assert response.status_code == 400
    assert response.json()["code"] == "OTP_ATTEMPTS_EXCEEDED"


async def test_code_is_single_use(client: Any, runtime: Any, tenant: Any) -> None:
    sent = await register_phone(client, tenant)
    code = await last_code(runtime, tenant.id)
    assert (await _validate(client, tenant, sent["auth_otp"], code)).status_code == 200
    again = await _validate(client, tenant, sent["auth_otp"], code)
    assert again.status_code == 400
    assert again.json()["code"] == "OTP_ALREADY_USED"


async def test_unknown_auth_otp_is_404(client: Any, tenant: Any) -> None:
    response = await _validate(client, tenant, "01a22335-b246-7e30-8335-b91ac9d556ba", "123456")
    assert response.status_code == 404
    assert response.json()["code"] == "OTP_NOT_FOUND"


async def test_resend_within_cooldown_is_429_with_retry_after(
    client: Any, runtime: Any, tenant: Any
) -> None:
    number = unique_phone()
    await register_phone(client, tenant, number)
    response = await _send(client, tenant, number)
    assert response.status_code == 429
    assert response.json()["code"] == "OTP_RESEND_TOO_SOON"
    assert 1 <= int(response.headers["Retry-After"]) <= 30


async def test_hourly_send_cap_per_identity(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FrozenClock()
    monkeypatch.setattr(runtime, "clock", clock)
    await set_policy(
        runtime, tenant, otp_resend_cooldown_seconds=0, otp_hourly_send_limit_per_client=10
    )
    number = unique_phone()
    await register_phone(client, tenant, number)
    for _ in range(9):
        clock.advance(1)
        assert (await _send(client, tenant, number)).status_code == 200
    clock.advance(1)
    response = await _send(client, tenant, number)
    assert response.status_code == 429
    assert response.json()["code"] == "OTP_SEND_LIMIT"
    assert int(response.headers["Retry-After"]) > 3000
    clock.advance(3600)
    assert (await _send(client, tenant, number)).status_code == 200


async def test_failure_counter_survives_resend_and_resets_on_success(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await set_policy(runtime, tenant, otp_resend_cooldown_seconds=0)
    number = unique_phone()
    first = await register_phone(client, tenant, number)
    code = await last_code(runtime, tenant.id)
    for _ in range(3):
        await _validate(client, tenant, first["auth_otp"], _wrong(code))
    second = (await _send(client, tenant, number)).json()
    code = await last_code(runtime, tenant.id)
    await _validate(client, tenant, second["auth_otp"], _wrong(code))
    assert (await _identity(runtime, number)).failed_attempts == 4
    assert (await _validate(client, tenant, second["auth_otp"], code)).status_code == 200
    identity = await _identity(runtime, number)
    assert identity.failed_attempts == 0
    assert identity.verified_at is not None


async def test_fifty_failures_delay_new_codes(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FrozenClock()
    monkeypatch.setattr(runtime, "clock", clock)
    await set_policy(runtime, tenant, otp_resend_cooldown_seconds=0)
    number = unique_phone()
    await register_phone(client, tenant, number)
    async with runtime.sessions() as session:
        await session.execute(
            update(Identity)
            .where(Identity.identifier == f"+357{number}")
            .values(failed_attempts=50, last_failure_at=clock.now())
        )
        await session.commit()
    response = await _send(client, tenant, number)
    assert response.status_code == 429
    assert response.json()["code"] == "IDENTITY_THROTTLED"
    assert int(response.headers["Retry-After"]) == 30
    clock.advance(31)
    assert (await _send(client, tenant, number)).status_code == 200


async def test_thousandth_failure_locks_until_back_office_unlocks(
    client: Any, runtime: Any, tenant: Any
) -> None:
    number = unique_phone()
    sent = await register_phone(client, tenant, number)
    code = await last_code(runtime, tenant.id)
    async with runtime.sessions() as session:
        await session.execute(
            update(Identity)
            .where(Identity.identifier == f"+357{number}")
            .values(failed_attempts=999)
        )
        await session.commit()
    assert (await _validate(client, tenant, sent["auth_otp"], _wrong(code))).status_code == 400
    locked = await _validate(client, tenant, sent["auth_otp"], code)
    assert locked.status_code == 403
    assert locked.json()["code"] == "IDENTITY_LOCKED"
    assert (await _send(client, tenant, number)).json()["code"] == "IDENTITY_LOCKED"

    identity = await _identity(runtime, number)
    async with runtime.sessions() as session:
        from crm.contacts.models import Contact

        contact = await session.get(Contact, identity.contact_pk)
        assert contact is not None
        await service.unlock_identity(
            session, runtime.clock, contact=contact, identity_id=identity.id, actor="test"
        )
        await session.commit()
    assert (await _validate(client, tenant, sent["auth_otp"], code)).status_code == 200


async def test_sent_code_never_appears_in_logs(
    client: Any, runtime: Any, tenant: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Driver DEBUG logs echo SQL parameters by design; the application logs at INFO and up.
    caplog.set_level("DEBUG", logger="crm")
    caplog.set_level("INFO")
    sent = await register_phone(client, tenant)
    code = await last_code(runtime, tenant.id)
    response = await _validate(client, tenant, sent["auth_otp"], code)
    tokens = response.json()
    logged = "\n".join(
        r.getMessage() + str(r.__dict__) for r in caplog.records if "console" not in r.name
    )
    assert any(r.name.startswith("crm.") for r in caplog.records)
    assert code not in logged
    assert tokens["refresh_token"] not in logged
    assert tokens["access_token"] not in logged


async def test_code_requests_per_client_address_are_capped(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FrozenClock()
    monkeypatch.setattr(runtime, "clock", clock)
    await set_policy(
        runtime, tenant, otp_resend_cooldown_seconds=0, otp_hourly_send_limit_per_client=10
    )
    numbers = [unique_phone() for _ in range(7)]
    for number in numbers:
        await register_phone(client, tenant, number)
    statuses = [
        (await _send(client, tenant, number)).status_code for number in numbers for _ in range(9)
    ]
    assert statuses[:60] == [200] * 60
    assert statuses[60] == 429
    response = await _send(client, tenant, numbers[-1])
    assert response.json()["code"] == "RATE_LIMITED"
    assert "Retry-After" in response.headers


async def test_code_requests_for_unknown_identities_count_toward_the_client_cap(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sweep for registered numbers is answered as for known ones (200, nothing sent): those
    # tries must count, or the per-client limit never throttles the enumeration it exists to stop.
    monkeypatch.setattr(runtime, "clock", FrozenClock())
    statuses = [(await _send(client, tenant, unique_phone())).status_code for _ in range(61)]
    assert statuses[:60] == [200] * 60
    assert statuses[60] == 429


async def test_registrations_per_client_are_capped_against_sms_pumping(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "clock", FrozenClock())
    monkeypatch.setattr(runtime.settings, "register_limit_per_client_hour", 3)
    for _ in range(3):
        await register_phone(client, tenant)
    body = {
        "first_name": "Ahmed",
        "identity": {"provider": "PHONE", "phone_number": unique_phone(), "country_code": "CYP"},
    }
    refused = await client.post(
        "/self-service/v1/contacts/register", json=body, headers=key(tenant)
    )
    assert refused.status_code == 429
    assert refused.json()["code"] == "RATE_LIMITED"
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    # Nothing of the refused registration was written.
    rows = await _identity_count(runtime, tenant)
    assert rows == 3


async def _identity_count(runtime: Any, tenant: Any) -> int:
    from sqlalchemy import func

    async with runtime.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Identity).where(Identity.tenant_id == tenant.id)
        )
    return int(count or 0)
