"""Failure counters that strangers cannot turn against owners: codes and passwords counted apart,
the guessing client throttled before the identity, unknown identifiers answered as known ones,
resends that supersede, and the issuing application's policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from crm.clock import FrozenClock
from crm.contacts.models import Contact
from crm.identities import service
from crm.identities.models import FailureCounter, Identity, OtpChallenge, OtpDecoy
from crm.security import passwords
from crm.tenants import service as tenants
from tests.support.selfservice import (
    PASSWORD,
    key,
    last_code,
    messages,
    register_phone,
    set_policy,
    unique_email,
    unique_phone,
)

V1 = "/self-service/v1"
V2 = "/self-service/v2"
OWNER = "10.0.0.7"
STRANGER = "10.0.0.66"


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@asynccontextmanager
async def _at(app: Any, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client calling from `address` (the per-client counters key on it)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def _frozen(runtime: Any, monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    clock = FrozenClock()
    monkeypatch.setattr(runtime, "clock", clock)
    return clock


async def _ask(client: Any, tenant: Any, phone: str, headers: dict[str, str] | None = None) -> Any:
    return await client.post(
        f"{V2}/contacts/otp",
        json={"method": "SMS", "credentials": [{"name": "PHONE", "value": phone}]},
        headers=headers or key(tenant),
    )


async def _check(
    client: Any, tenant: Any, auth_otp: str, code: str, headers: dict[str, str] | None = None
) -> Any:
    return await client.post(
        f"{V2}/contacts/validate_otp",
        json={"auth_otp": auth_otp, "code": code},
        headers=headers or key(tenant),
    )


async def _check_by_phone(client: Any, tenant: Any, phone: str, code: str) -> Any:
    return await client.post(
        f"{V1}/contacts/validate-otp",
        json={"credentials": [{"name": "PHONE", "value": phone}], "code": code},
        headers=key(tenant),
    )


async def _password(client: Any, tenant: Any, username: str, password: str) -> Any:
    return await client.post(
        f"{V2}/contacts/authenticate",
        json={"username": username, "password": password},
        headers=key(tenant),
    )


def _answer(response: Any) -> tuple[int, str | None, str | None]:
    body = response.json() if response.content else {}
    code = body.get("code") if isinstance(body, dict) else None
    return response.status_code, code, response.headers.get("Retry-After")


async def _identity(runtime: Any, identifier: str) -> Identity:
    async with runtime.sessions() as session:
        found = await session.scalar(select(Identity).where(Identity.identifier == identifier))
        assert found is not None
        return found


async def _owner_with_password(client: Any, runtime: Any, tenant: Any) -> tuple[str, str]:
    """A phone contact (proven by its code) with an email identity and a password: (phone, email)."""
    number = unique_phone()
    phone = f"+357{number}"
    sent = await register_phone(client, tenant, number)
    code = await last_code(runtime, tenant.id)
    assert (await _check(client, tenant, sent["auth_otp"], code)).status_code == 200
    email = unique_email()
    hashed = await passwords.hash_password(PASSWORD)
    identity = await _identity(runtime, phone)
    async with runtime.sessions() as session:
        contact = await session.get(Contact, identity.contact_pk)
        assert contact is not None
        await service.add_identity(
            session,
            runtime.clock,
            runtime.secret,
            contact=contact,
            provider="EMAIL",
            email=email,
            verified=True,
            actor="test",
        )
        await session.execute(
            update(Identity).where(Identity.contact_pk == contact.pk).values(password_hash=hashed)
        )
        await session.commit()
    return phone, email


async def _sign_in_by_code(client: Any, runtime: Any, tenant: Any, phone: str) -> Any:
    if isinstance(runtime.clock, FrozenClock):
        runtime.clock.advance(31)  # past the resend cooldown of the code sent before
    sent = await _ask(client, tenant, phone)
    assert sent.status_code == 200, sent.text
    code = await last_code(runtime, tenant.id)
    return await _check(client, tenant, sent.json()["auth_otp"], code)


# --- codes and passwords counted apart ----------------------------------------------------


async def test_eleven_wrong_passwords_do_not_throttle_the_owners_code_or_password(
    app: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _frozen(runtime, monkeypatch)
    async with _at(app, OWNER) as owner, _at(app, STRANGER) as stranger:
        phone, email = await _owner_with_password(owner, runtime, tenant)
        answers = [
            _answer(await _password(stranger, tenant, email, "wrong guess 1")) for _ in range(11)
        ]
        assert answers[:5] == [(401, "INVALID_CREDENTIALS", None)] * 5
        # From the sixth, the stranger waits; the owner's counter moved only five times.
        assert {a[1] for a in answers[5:]} == {"CLIENT_THROTTLED"}
        assert (await _sign_in_by_code(owner, runtime, tenant, phone)).status_code == 200
        assert (await _password(owner, tenant, email, PASSWORD)).status_code == 200


async def test_a_throttled_password_leaves_codes_alone_and_the_reverse(
    app: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _frozen(runtime, monkeypatch)
    async with _at(app, OWNER) as owner:
        phone, email = await _owner_with_password(owner, runtime, tenant)
        identity = await _identity(runtime, phone)
        async with runtime.sessions() as session:
            # The contact's password counter past its delay threshold...
            session.add(
                FailureCounter(
                    subject=f"password:contact:{identity.contact_pk}",
                    failed_attempts=60,
                    last_failure_at=clock.now(),
                )
            )
            await session.commit()
        refused = await _password(owner, tenant, email, PASSWORD)
        assert _answer(refused)[:2] == (429, "IDENTITY_THROTTLED")
        # ...does not touch the identity's code counter.
        assert (await _sign_in_by_code(owner, runtime, tenant, phone)).status_code == 200
        clock.advance(3600)
        async with runtime.sessions() as session:
            await session.execute(
                update(Identity)
                .where(Identity.contact_pk == identity.contact_pk)
                .values(failed_attempts=60, last_failure_at=clock.now())
            )
            await session.commit()
        assert (await _password(owner, tenant, email, PASSWORD)).status_code == 200
        assert _answer(await _ask(owner, tenant, phone))[:2] == (429, "IDENTITY_THROTTLED")


async def test_unknown_identities_are_throttled_exactly_as_known_ones(
    app: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _frozen(runtime, monkeypatch)
    await set_policy(runtime, tenant, failure_delay_threshold=8)
    async with _at(app, OWNER) as owner:
        _phone, email = await _owner_with_password(owner, runtime, tenant)
    unknown = unique_email()

    async def run(username: str) -> list[tuple[int, str | None, str | None]]:
        seen = []
        # Three addresses of five guesses each: the subject's own delay starts at eight.
        for n, address in enumerate(("10.1.0.1", "10.1.0.2", "10.1.0.3")):
            async with _at(app, address) as guesser:
                for _ in range(6):
                    seen.append(_answer(await _password(guesser, tenant, username, f"no {n}!")))
        clock.advance(7200)  # both counters forgotten before the next run
        return seen

    known_answers = await run(email)
    unknown_answers = await run(unknown)
    assert known_answers == unknown_answers
    assert ("IDENTITY_THROTTLED" in {a[1] for a in known_answers}) is True
    assert "CLIENT_THROTTLED" in {a[1] for a in known_answers}


# --- unknown identifiers answered as known ones ---------------------------------------------


async def test_code_request_for_an_unknown_number_answers_as_for_a_known_one(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _frozen(runtime, monkeypatch)
    known = f"+357{unique_phone()}"
    await register_phone(client, tenant, known[4:])
    clock.advance(60)
    unknown = f"+357{unique_phone()}"
    before = len(await messages(runtime, tenant.id, "OTP"))

    async def run(phone: str) -> list[tuple[int, str | None, str | None]]:
        sent = await _ask(client, tenant, phone)
        assert sent.status_code == 200
        body = sent.json()
        assert set(body) == {"auth_otp", "obfuscated_value"}
        assert body["obfuscated_value"].startswith("+357") and "***" in body["obfuscated_value"]
        seen = [_answer(await _ask(client, tenant, phone))]  # the cooldown
        for _ in range(5):
            seen.append(_answer(await _check(client, tenant, body["auth_otp"], "000000")))
        seen.append(_answer(await _check(client, tenant, body["auth_otp"], "000000")))
        clock.advance(7200)
        seen.append(_answer(await _check(client, tenant, body["auth_otp"], "000000")))
        return seen

    known_answers = await run(known)
    unknown_answers = await run(unknown)
    assert known_answers == unknown_answers
    assert known_answers[0][:2] == (429, "OTP_RESEND_TOO_SOON")
    assert known_answers[1] == (400, "OTP_INVALID", None)
    assert known_answers[-2][1] == "CLIENT_THROTTLED"
    # Nothing was sent to the unknown number: one message, for the known one's request.
    assert len(await messages(runtime, tenant.id, "OTP")) == before + 1
    async with runtime.sessions() as session:
        decoys = await session.scalar(
            select(func.count()).select_from(OtpDecoy).where(OtpDecoy.tenant_id == tenant.id)
        )
    assert decoys == 1


async def test_an_unknown_numbers_code_never_validates_by_credentials_either(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _frozen(runtime, monkeypatch)
    unknown = f"+357{unique_phone()}"
    never = await _check_by_phone(client, tenant, unknown, "123456")
    assert _answer(never)[:2] == (404, "OTP_NOT_FOUND")
    assert (await _ask(client, tenant, unknown)).status_code == 200
    for guess in ("000000", "123456", "999999", "12345", "abcdef"):
        assert _answer(await _check_by_phone(client, tenant, unknown, guess))[:2] == (
            400,
            "OTP_INVALID",
        )


async def test_forgot_password_does_the_same_work_for_unknown_names(
    app: Any, client: Any, runtime: Any, tenant: Any
) -> None:
    async with _at(app, OWNER) as owner:
        _phone, email = await _owner_with_password(owner, runtime, tenant)
    unknown = unique_email()
    for username in (email, unknown):
        response = await client.post(
            f"{V2}/contacts/forgot_password", json={"username": username}, headers=key(tenant)
        )
        assert response.status_code == 204
        assert response.content == b""
    assert len(await messages(runtime, tenant.id, "PASSWORD_RESET")) == 1
    async with runtime.sessions() as session:
        decoys = await session.scalar(
            select(func.count())
            .select_from(OtpDecoy)
            .where(OtpDecoy.tenant_id == tenant.id, OtpDecoy.purpose == "PASSWORD_RESET")
        )
        tokens = await session.scalar(
            select(func.count())
            .select_from(OtpChallenge)
            .where(OtpChallenge.tenant_id == tenant.id, OtpChallenge.purpose == "PASSWORD_RESET")
        )
    assert (decoys, tokens) == (1, 1)


# --- resends, issuing policy ------------------------------------------------------------------


async def test_a_resend_supersedes_the_earlier_code(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _frozen(runtime, monkeypatch)
    number = unique_phone()
    first = await register_phone(client, tenant, number)
    first_code = await last_code(runtime, tenant.id)
    clock.advance(31)
    second = (await _ask(client, tenant, f"+357{number}")).json()
    second_code = await last_code(runtime, tenant.id)
    old = await _check(client, tenant, first["auth_otp"], first_code)
    assert _answer(old)[:2] == (400, "OTP_EXPIRED")
    assert (await _check(client, tenant, second["auth_otp"], second_code)).status_code == 200


async def test_validation_applies_the_issuing_applications_policy(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await set_policy(runtime, tenant, otp_max_attempts=2)
    async with runtime.sessions() as session:
        _app_id, keys = await tenants.create_application(
            session, runtime.clock, tenant.id, "Lenient portal"
        )
        await session.commit()
    lenient = {"api_key": keys["public_test"]}
    sent = await register_phone(client, tenant)
    code = await last_code(runtime, tenant.id)
    for _ in range(2):
        wrong = await _check(client, tenant, sent["auth_otp"], _wrong(code), lenient)
        assert _answer(wrong)[:2] == (400, "OTP_INVALID")
    # The other application allows five tries; the code's own application allows two.
    spent = await _check(client, tenant, sent["auth_otp"], code, lenient)
    assert _answer(spent)[:2] == (400, "OTP_ATTEMPTS_EXCEEDED")


# --- no lock-out by strangers ---------------------------------------------------------------


async def test_a_throttled_guess_costs_the_code_no_try(
    app: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _frozen(runtime, monkeypatch)
    await set_policy(runtime, tenant, otp_max_attempts=10)
    async with _at(app, OWNER) as owner:
        sent = await register_phone(owner, tenant)
    code = await last_code(runtime, tenant.id)
    async with _at(app, STRANGER) as stranger:
        statuses = [
            _answer(await _check(stranger, tenant, sent["auth_otp"], _wrong(code)))[1]
            for _ in range(8)
        ]
    assert statuses == ["OTP_INVALID"] * 5 + ["CLIENT_THROTTLED"] * 3
    async with runtime.sessions() as session:
        challenge = await session.get(OtpChallenge, sent["auth_otp"])
        assert challenge is not None and challenge.attempts == 5
    clock.advance(6)
    async with _at(app, OWNER) as owner:
        assert (await _check(owner, tenant, sent["auth_otp"], code)).status_code == 200


async def test_one_client_may_use_only_its_share_of_an_identitys_sends(
    app: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _frozen(runtime, monkeypatch)
    async with _at(app, OWNER) as owner, _at(app, STRANGER) as stranger:
        number = unique_phone()
        await register_phone(owner, tenant, number)
        phone = f"+357{number}"
        answers = []
        for _ in range(4):
            clock.advance(31)
            answers.append(_answer(await _ask(stranger, tenant, phone))[:2])
        assert answers == [(200, None)] * 3 + [(429, "OTP_SEND_LIMIT")]
        clock.advance(31)
        assert (await _sign_in_by_code(owner, runtime, tenant, phone)).status_code == 200


async def test_a_stranger_at_full_speed_for_an_hour_cannot_stop_the_owner(
    app: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _frozen(runtime, monkeypatch)
    async with _at(app, OWNER) as owner, _at(app, STRANGER) as stranger:
        phone, email = await _owner_with_password(owner, runtime, tenant)
        seen: dict[str, int] = {}
        auth_otp = None

        async def stranger_round() -> None:
            nonlocal auth_otp
            asked = await _ask(stranger, tenant, phone)
            if asked.status_code == 200:
                auth_otp = asked.json()["auth_otp"]
            tries = [asked, await _check_by_phone(stranger, tenant, phone, "000000")]
            if auth_otp is not None:
                tries.append(await _check(stranger, tenant, auth_otp, "000001"))
            tries.append(await _password(stranger, tenant, email, "not the password"))
            for response in tries:
                name = _answer(response)[1] or str(response.status_code)
                seen[name] = seen.get(name, 0) + 1

        # Every operation every 30 seconds for an hour: as often as the resend cooldown allows,
        # and far more often than the delays allow (a request inside a delay changes nothing).
        for _ in range(120):
            await stranger_round()
            clock.advance(30)
        # The stranger got three codes sent (its share) and was held back from there on.
        assert seen.get("200", 0) <= 3, sorted(seen.items())
        assert seen.get("CLIENT_THROTTLED", 0) >= 100, sorted(seen.items())
        identity = await _identity(runtime, phone)
        assert identity.locked_at is None
        assert identity.failed_attempts <= 5

        # The owner asks for a fresh code and signs in within a few minutes.
        waited = 0
        for _ in range(5):
            asked = await _ask(owner, tenant, phone)
            if asked.status_code == 200:
                break
            retry = int(asked.headers["Retry-After"])
            clock.advance(retry)
            waited += retry
        assert asked.status_code == 200, asked.text
        code = await last_code(runtime, tenant.id)
        await stranger_round()  # the stranger cannot spoil the fresh code meanwhile
        assert (await _check(owner, tenant, asked.json()["auth_otp"], code)).status_code == 200
        assert (await _password(owner, tenant, email, PASSWORD)).status_code == 200
        assert waited <= 180


async def test_the_identity_lock_ends_by_itself_and_the_back_office_lifts_it(
    app: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _frozen(runtime, monkeypatch)
    async with _at(app, OWNER) as owner:
        phone, email = await _owner_with_password(owner, runtime, tenant)
        identity = await _identity(runtime, phone)
        async with runtime.sessions() as session:
            await session.execute(
                update(Identity)
                .where(Identity.id == identity.id)
                .values(failed_attempts=1000, locked_at=clock.now(), last_failure_at=clock.now())
            )
            session.add(
                FailureCounter(
                    subject=f"password:contact:{identity.contact_pk}",
                    failed_attempts=1000,
                    last_failure_at=clock.now(),
                    locked_at=clock.now(),
                )
            )
            await session.commit()
        assert _answer(await _ask(owner, tenant, phone))[:2] == (403, "IDENTITY_LOCKED")
        assert _answer(await _password(owner, tenant, email, PASSWORD))[:2] == (
            403,
            "IDENTITY_LOCKED",
        )
        clock.advance(3601)
        # The code lock has ended by itself...
        assert (await _sign_in_by_code(owner, runtime, tenant, phone)).status_code == 200
        # ...and the back office's unlock lifts the contact's password lock as well.
        async with runtime.sessions() as session:
            await session.execute(
                update(FailureCounter)
                .where(FailureCounter.subject == f"password:contact:{identity.contact_pk}")
                .values(locked_at=clock.now())
            )
            await session.commit()
        assert _answer(await _password(owner, tenant, email, PASSWORD))[0] == 403
        async with runtime.sessions() as session:
            contact = await session.get(Contact, identity.contact_pk)
            assert contact is not None
            await service.unlock_identity(
                session, runtime.clock, contact=contact, identity_id=identity.id, actor="test"
            )
            await session.commit()
        assert (await _password(owner, tenant, email, PASSWORD)).status_code == 200
