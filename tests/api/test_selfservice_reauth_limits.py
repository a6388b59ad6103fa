"""Re-authentication before sensitive changes, and the per-contact and per-client limits on
adding identities and on request_email_verification."""

from __future__ import annotations

from typing import Any

import pytest

from crm.clock import FrozenClock
from tests.support.selfservice import (
    PASSWORD,
    bearer,
    key,
    messages,
    set_policy,
    sign_in_by_phone,
    unique_email,
    verify_added_identity,
)

V2 = "/self-service/v2"
PROOF_FIRST = {"otp_resend_cooldown_seconds": 0}


async def _add(client: Any, tokens: dict[str, Any], body: dict[str, Any]) -> Any:
    return await client.post(
        f"{V2}/contacts/{tokens['contact']['id']}/identities",
        json=body,
        headers=bearer(tokens["access_token"]),
    )


# --- re-authentication -----------------------------------------------------------------------


async def test_sensitive_changes_need_a_recent_sign_in_or_the_current_password(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FrozenClock()
    monkeypatch.setattr(runtime, "clock", clock)
    await set_policy(runtime, tenant, **PROOF_FIRST)
    tokens = await sign_in_by_phone(client, runtime, tenant)
    contact_id = tokens["contact"]["id"]
    auth = bearer(tokens["access_token"])
    address = unique_email()
    added = await _add(client, tokens, {"provider": "EMAIL", "email": address})
    assert added.status_code == 201  # a fresh sign-in is enough
    assert (
        await verify_added_identity(client, runtime, tenant, tokens, added.json()["id"])
    ).status_code == 204
    first_password = await client.post(
        f"{V2}/contacts/{contact_id}/change_password", json={"password": PASSWORD}, headers=auth
    )
    assert first_password.status_code == 204, first_password.text

    clock.advance(runtime.settings.reauth_max_age_seconds + 1)  # the access token still lives
    stale = [
        await _add(client, tokens, {"provider": "EMAIL", "email": unique_email()}),
        await client.post(
            f"{V2}/contacts/{contact_id}/change_password",
            json={"password": "another fine passphrase"},
            headers=auth,
        ),
        await client.put(
            f"{V2}/contacts/{contact_id}", json={"email": unique_email()}, headers=auth
        ),
    ]
    for response in stale:
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "REAUTHENTICATION_REQUIRED"
    # Other profile changes need nothing more.
    named = await client.put(f"{V2}/contacts/{contact_id}", json={"first_name": "A"}, headers=auth)
    assert named.status_code == 200
    wrong = await client.post(
        f"{V2}/contacts/{contact_id}/change_password",
        json={"password": "another fine passphrase", "current_password": "not my password"},
        headers=auth,
    )
    assert wrong.status_code == 403 and wrong.json()["code"] == "CURRENT_PASSWORD_INVALID"
    right = await client.post(
        f"{V2}/contacts/{contact_id}/change_password",
        json={"password": "another fine passphrase", "current_password": PASSWORD},
        headers=auth,
    )
    assert right.status_code == 204, right.text
    # Guessing the current password is throttled per contact.
    statuses = []
    for _ in range(12):
        guess = await client.post(
            f"{V2}/contacts/{contact_id}/change_password",
            json={"password": "yet another passphrase", "current_password": "a guess"},
            headers=auth,
        )
        statuses.append(guess.status_code)
    assert statuses[-1] == 429


# --- abuse limits ----------------------------------------------------------------------------


async def test_adding_identities_is_limited_per_contact(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await set_policy(runtime, tenant, **PROOF_FIRST)
    tokens = await sign_in_by_phone(client, runtime, tenant)
    before = len(await messages(runtime, tenant.id))
    statuses = [
        (await _add(client, tokens, {"provider": "EMAIL", "email": unique_email()})).status_code
        for _ in range(12)
    ]
    assert statuses[:10] == [201] * 10
    assert statuses[10:] == [429, 429]
    assert len(await messages(runtime, tenant.id)) == before + 10


async def test_request_email_verification_is_limited_per_client(
    client: Any, runtime: Any, tenant: Any
) -> None:
    statuses = []
    for _ in range(22):
        response = await client.post(
            f"{V2}/contacts/request_email_verification",
            json={"email_address": unique_email()},
            headers=key(tenant),
        )
        statuses.append(response.status_code)
    assert statuses[:20] == [204] * 20
    assert statuses[20:] == [429, 429]


async def test_adding_identities_is_limited_per_client(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crm.identities import proof

    # Three contacts signed in from one address share the client's allowance.
    monkeypatch.setattr(proof, "ADD_LIMIT_PER_CLIENT_HOUR", 4)
    await set_policy(runtime, tenant, **PROOF_FIRST)
    statuses = []
    for _ in range(3):
        tokens = await sign_in_by_phone(client, runtime, tenant)
        for _ in range(2):
            added = await _add(client, tokens, {"provider": "EMAIL", "email": unique_email()})
            statuses.append(added.status_code)
    assert statuses == [201, 201, 201, 201, 429, 429]
