"""Sign-in through a real OpenID Connect provider (oidc-provider on loopback): by ID token and by
redirect with PKCE, the refusals of bad tokens, and linking without takeover.

crm runs in-process on a frozen clock (so a real token can be made to expire); the provider is
the Node.js process of tests/support/oidc.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crm.app import create_app
from crm.clock import FrozenClock
from crm.runtime import Runtime
from crm.social import jwks
from crm.social.redirect import CALLBACK_PATH
from crm.tenants import service as tenants
from crm.tenants.schemas import CreatedTenant
from tests.conftest import base_settings
from tests.support.oidc_provider import Client, OidcProvider, browse
from tests.support.selfservice import last_code

PUBLIC_URL = "http://127.0.0.1:8000"
APP = Client("crm-app", "app-secret-" + "a" * 32, ["http://127.0.0.1:9/app-callback"])
OTHER = Client("other-app", "other-secret-" + "b" * 32, ["http://127.0.0.1:9/other"])
WEB = Client("crm-web", "web-secret-" + "c" * 32, [PUBLIC_URL + CALLBACK_PATH])
APP_RETURN = "https://app.example.com/signed-in"
ACCOUNTS: dict[str, dict[str, Any]] = {
    "alice": {
        "email": "alice@example.com",
        "email_verified": True,
        "given_name": "Alice",
        "family_name": "Liddell",
    },
    "bob": {"email": "bob@example.com", "email_verified": True, "given_name": "Bob"},
    "carol": {"email": "carol@example.com", "email_verified": False},
    # A provider account opened with the victim's address (a provider that verifies nothing, or a
    # recycled address): it must never reach the victim's contact on the address alone.
    "mallory": {"email": "victim@example.com", "email_verified": True},
    "victim": {"email": "victim@example.com", "email_verified": True},
    "dave": {"email": "dave@example.com", "email_verified": True},
    "erin": {"email": "erin@example.com", "email_verified": True},
}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    started = OidcProvider([APP, OTHER, WEB], ACCOUNTS, tmp_path_factory.mktemp("oidc")).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
async def rt(database_url: str) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(
        base_settings(database_url=database_url, public_url=PUBLIC_URL), clock=FrozenClock()
    )
    yield runtime
    await runtime.close()


@pytest.fixture
async def api(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(rt.settings, runtime=rt))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
        yield client


@pytest.fixture
async def shop(rt: Runtime, api: httpx.AsyncClient, provider: OidcProvider) -> CreatedTenant:
    """A tenant whose oidc, google, apple and facebook providers are all the local issuer."""
    async with rt.sessions() as session:
        created = await tenants.create_tenant(session, rt.clock, f"Shop {time.time_ns()}")
        await tenants.update_application_settings(
            session, created.application_id, {"oidc_redirect_urls": APP_RETURN}, []
        )
        await session.commit()
    sk = {"api_key": created.keys["secret_test"]}
    oidc = {
        "issuer": provider.issuer,
        "client_id": WEB.client_id,
        "client_secret": WEB.client_secret,
        "audiences": [APP.client_id],
    }
    assert (
        await api.put("/backoffice/v1/identity_providers/oidc", headers=sk, json=oidc)
    ).is_success
    for kind in ("google", "apple", "facebook"):
        body = {"issuer": provider.issuer, "client_id": APP.client_id}
        answer = await api.put(f"/backoffice/v1/identity_providers/{kind}", headers=sk, json=body)
        assert answer.status_code == 200, answer.text
    return created


def pk(tenant: CreatedTenant) -> dict[str, str]:
    return {"api_key": tenant.keys["public_test"]}


async def authenticate(
    api: httpx.AsyncClient,
    tenant: CreatedTenant,
    token: str,
    provider: str = "OIDC_OAUTH",
    **more: Any,
) -> httpx.Response:
    body = {"provider": provider, "token": token, **more}
    return await api.post("/self-service/v2/contacts/authenticate", headers=pk(tenant), json=body)


async def register(
    api: httpx.AsyncClient, tenant: CreatedTenant, token: str, provider: str = "OIDC_OAUTH"
) -> httpx.Response:
    body = {"identification": {"provider": provider, "token": token}, "first_name": "Given"}
    return await api.post("/self-service/v2/contacts/register", headers=pk(tenant), json=body)


def rogue_token(issuer: str, kid: str, **claims: Any) -> str:
    """A token signed by a key the provider never published."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    body = {"iss": issuer, "aud": APP.client_id, "sub": "alice", "iat": now, "exp": now + 600}
    body.update(claims)
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


# -- by ID token ---------------------------------------------------------------------------


async def test_register_then_sign_in_with_a_real_id_token(
    api: httpx.AsyncClient, shop: CreatedTenant, provider: OidcProvider
) -> None:
    token = provider.id_token(APP, "alice")
    first = await register(api, shop, token)
    assert first.status_code == 201, first.text
    contact = first.json()["contact"]
    assert first.json()["access_token"] and first.json()["refresh_token"]
    assert contact["first_name"] == "Given" and contact["last_name"] == "Liddell"
    # The token object is the one of a code sign-in: the access token reads the profile.
    profile = await api.get(
        f"/self-service/v2/contacts/{contact['id']}",
        headers={"Authorization": f"Bearer {first.json()['access_token']}"},
    )
    assert profile.status_code == 200 and profile.json()["email"] == "alice@example.com"
    # Register again with the same provider account signs the same contact in.
    again = await register(api, shop, provider.id_token(APP, "alice"))
    assert again.status_code == 201 and again.json()["contact"]["id"] == contact["id"]
    signed = await authenticate(api, shop, provider.id_token(APP, "alice"))
    assert signed.status_code == 200 and signed.json()["contact"]["id"] == contact["id"]


async def test_google_apple_and_facebook_settings_reach_the_same_issuer_account(
    api: httpx.AsyncClient, shop: CreatedTenant, provider: OidcProvider
) -> None:
    ids = set()
    for name in ("GOOGLE", "APPLE", "FACEBOOK", "OIDC_OAUTH"):
        answer = await authenticate(api, shop, provider.id_token(APP, "bob"), provider=name)
        assert answer.status_code == 200, (name, answer.text)
        ids.add(answer.json()["contact"]["id"])
    assert len(ids) == 1  # the identity is the issuer and sub, whichever setting checked it


async def test_tokens_for_another_audience_are_refused(
    api: httpx.AsyncClient, shop: CreatedTenant, provider: OidcProvider
) -> None:
    answer = await authenticate(api, shop, provider.id_token(OTHER, "alice"))
    assert answer.status_code == 401 and answer.json()["code"] == "OIDC_AUDIENCE_MISMATCH"
    # google's client id is crm-app alone: the crm-web audience of the oidc setting is not its.
    answer = await authenticate(api, shop, provider.id_token(OTHER, "alice"), provider="GOOGLE")
    assert answer.json()["code"] == "OIDC_AUDIENCE_MISMATCH"


async def test_an_expired_token_is_refused(
    api: httpx.AsyncClient, shop: CreatedTenant, provider: OidcProvider, rt: Runtime
) -> None:
    token = provider.id_token(APP, "dave")
    claims = jwt.decode(token, options={"verify_signature": False})
    clock = rt.clock
    assert isinstance(clock, FrozenClock)
    lived = claims["exp"] - clock.timestamp() + 61  # past expiry and the 60 s leeway
    clock.advance(lived)
    try:
        answer = await authenticate(api, shop, token)
    finally:
        clock.advance(-lived)
    assert answer.status_code == 401 and answer.json()["code"] == "OIDC_TOKEN_EXPIRED"
    # Within the leeway it still signs in.
    clock.advance(lived - 2)
    try:
        assert (await authenticate(api, shop, token)).status_code == 200
    finally:
        clock.advance(-(lived - 2))


async def test_the_nonce_must_be_the_one_given(
    api: httpx.AsyncClient, shop: CreatedTenant, provider: OidcProvider
) -> None:
    token = provider.id_token(APP, "erin", nonce="n-0123456789")
    wrong = await authenticate(api, shop, token, nonce="n-other")
    assert wrong.status_code == 401 and wrong.json()["code"] == "OIDC_NONCE_MISMATCH"
    missing = await authenticate(api, shop, provider.id_token(APP, "erin"), nonce="n-0123456789")
    assert missing.json()["code"] == "OIDC_NONCE_MISMATCH"
    right = await authenticate(api, shop, token, nonce="n-0123456789")
    assert right.status_code == 200, right.text


async def test_unknown_keys_bad_signatures_and_refused_algorithms(
    api: httpx.AsyncClient, shop: CreatedTenant, provider: OidcProvider
) -> None:
    unknown = await authenticate(api, shop, rogue_token(provider.issuer, "rogue-kid"))
    assert unknown.status_code == 401 and unknown.json()["code"] == "OIDC_SIGNATURE_INVALID"
    # The provider's own key id, another key's signature.
    forged = await authenticate(api, shop, rogue_token(provider.issuer, "test-rs256"))
    assert forged.json()["code"] == "OIDC_SIGNATURE_INVALID"
    # A real token with one claim changed keeps its signature no longer.
    header, payload, signature = provider.id_token(APP, "alice").split(".")
    tampered = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"alice"', b'"bobby"')
    ).decode()
    answer = await authenticate(api, shop, f"{header}.{tampered}.{signature}")
    assert answer.json()["code"] == "OIDC_SIGNATURE_INVALID"
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "aud": APP.client_id,
        "sub": "alice",
        "iat": now,
        "exp": now + 60,
    }
    hs256 = jwt.encode(claims, APP.client_secret, algorithm="HS256")
    none = jwt.encode(claims, None, algorithm="none")
    for token in (hs256, none, "not-a-token"):
        answer = await authenticate(api, shop, token)
        assert answer.status_code == 401 and answer.json()["code"] == "OIDC_TOKEN_INVALID"


async def test_another_issuer_is_refused_before_any_key_fetch(
    api: httpx.AsyncClient, shop: CreatedTenant, provider: OidcProvider
) -> None:
    fetches = jwks.CACHE.fetches(provider.issuer)
    answer = await authenticate(api, shop, rogue_token("https://accounts.evil.example", "k"))
    assert answer.status_code == 401 and answer.json()["code"] == "OIDC_ISSUER_MISMATCH"
    assert jwks.CACHE.fetches(provider.issuer) == fetches


async def test_unknown_key_ids_cannot_force_key_fetches(
    api: httpx.AsyncClient, shop: CreatedTenant, provider: OidcProvider
) -> None:
    jwks.CACHE.forget(provider.issuer)
    assert (await authenticate(api, shop, provider.id_token(APP, "alice"))).status_code == 200
    assert jwks.CACHE.fetches(provider.issuer) == 1
    for n in range(5):
        answer = await authenticate(api, shop, rogue_token(provider.issuer, f"rotated-{n}"))
        assert answer.json()["code"] == "OIDC_SIGNATURE_INVALID"
    # One refetch at most per interval, and the first fetch was moments ago: none.
    assert jwks.CACHE.fetches(provider.issuer) == 1


async def test_a_provider_not_set_or_not_for_this_app_is_refused(
    api: httpx.AsyncClient, tenant: CreatedTenant, provider: OidcProvider
) -> None:
    answer = await authenticate(api, tenant, provider.id_token(APP, "alice"), provider="GOOGLE")
    assert answer.status_code == 400 and answer.json()["code"] == "IDENTITY_PROVIDER_NOT_CONFIGURED"


# -- linking without takeover --------------------------------------------------------------


async def make_victim(api: httpx.AsyncClient, shop: CreatedTenant) -> str:
    """A contact holding victim@example.com, proven (the business's own claim)."""
    sk = {"api_key": shop.keys["secret_test"]}
    made = await api.post(
        "/backoffice/v1/contacts",
        headers=sk,
        json={"first_name": "Vic", "email_address": "victim@example.com"},
    )
    victim_id: str = made.json()["id"]
    identity = {"provider": "EMAIL", "email": "victim@example.com", "verified": True}
    added = await api.post(
        f"/backoffice/v1/contacts/{victim_id}/identities", headers=sk, json=identity
    )
    assert added.status_code == 201, added.text
    return victim_id


async def sign_in_by_code(
    api: httpx.AsyncClient, shop: CreatedTenant, rt: Runtime
) -> dict[str, str]:
    """The victim proves victim@example.com with a code; their bearer header."""
    sent = await api.post(
        "/self-service/v2/contacts/otp",
        headers=pk(shop),
        json={"credentials": [{"name": "EMAIL", "value": "victim@example.com"}]},
    )
    code = await last_code(rt, shop.id)
    tokens = await api.post(
        "/self-service/v2/contacts/validate_otp",
        headers=pk(shop),
        json={"auth_otp": sent.json()["auth_otp"], "code": code},
    )
    assert tokens.status_code == 200, tokens.text
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


async def test_an_account_with_the_victims_email_cannot_reach_the_victim(
    api: httpx.AsyncClient, shop: CreatedTenant, provider: OidcProvider, rt: Runtime
) -> None:
    sk = {"api_key": shop.keys["secret_test"]}
    victim_id = await make_victim(api, shop)
    for attempt in (register, authenticate):
        answer = await attempt(api, shop, provider.id_token(APP, "mallory"))
        assert answer.status_code == 409 and answer.json()["code"] == "OIDC_LINK_REQUIRED"
        assert "access_token" not in answer.text
    listed = await api.get(f"/backoffice/v1/contacts/{victim_id}/identities", headers=sk)
    assert [i["provider"] for i in listed.json()] == ["EMAIL"]
    # The victim proves the address (a code to it), then links their own provider account.
    bearer = await sign_in_by_code(api, shop, rt)
    link = await api.post(
        f"/self-service/v2/contacts/{victim_id}/oidc_identities",
        headers=bearer,
        json={"provider": "GOOGLE", "token": provider.id_token(APP, "victim")},
    )
    assert link.status_code == 201, link.text
    assert link.json()["sub"] == "victim"
    signed = await authenticate(api, shop, provider.id_token(APP, "victim"), provider="GOOGLE")
    assert signed.status_code == 200 and signed.json()["contact"]["id"] == victim_id
    listed = await api.get(f"/backoffice/v1/contacts/{victim_id}/identities", headers=sk)
    assert sorted(i["provider"] for i in listed.json()) == ["EMAIL", "OIDC"]
    # Mallory's account is still refused; and an account linked elsewhere cannot be taken.
    still = await authenticate(api, shop, provider.id_token(APP, "mallory"))
    assert still.json()["code"] == "OIDC_LINK_REQUIRED"
    bob = await authenticate(api, shop, provider.id_token(APP, "bob"))
    taken = await api.post(
        f"/self-service/v2/contacts/{victim_id}/oidc_identities",
        headers=bearer,
        json={"provider": "GOOGLE", "token": provider.id_token(APP, "bob")},
    )
    assert bob.status_code == 200
    assert taken.status_code == 409 and taken.json()["code"] == "OIDC_IDENTITY_TAKEN"


async def test_an_unverified_email_neither_links_nor_lands_on_the_contact(
    api: httpx.AsyncClient, shop: CreatedTenant, provider: OidcProvider
) -> None:
    answer = await authenticate(api, shop, provider.id_token(APP, "carol"))
    assert answer.status_code == 200
    profile = await api.get(
        f"/self-service/v2/contacts/{answer.json()['contact']['id']}",
        headers={"Authorization": f"Bearer {answer.json()['access_token']}"},
    )
    assert "email" not in profile.json()


# -- by redirect -----------------------------------------------------------------------------


async def _redirect_sign_in(
    api: httpx.AsyncClient,
    tenant: CreatedTenant,
    account: str,
    kind: str = "oidc",
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """Start at crm, sign in at the provider, come back through crm's callback: the app's query."""
    started = await api.get(
        f"/self-service/v2/contacts/oidc/{kind}",
        headers={**pk(tenant), **(headers or {})},
        params={"redirect_url": APP_RETURN, "login_hint": account},
    )
    assert started.status_code == 200, started.text
    url = started.json()["authorization_url"]
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["state"] and query["nonce"]
    with httpx.Client() as browser:
        callback = browse(browser, url, PUBLIC_URL + CALLBACK_PATH)
    ended = await api.get(callback.removeprefix(PUBLIC_URL))
    assert ended.status_code == 303, ended.text
    location = ended.headers["location"]
    assert location.startswith(APP_RETURN + "?")
    # The callback is single-use: the same provider answer again is refused.
    again = await api.get(callback.removeprefix(PUBLIC_URL))
    assert again.status_code == 400 and again.json()["code"] == "OIDC_STATE_INVALID"
    return dict(parse_qsl(urlsplit(location).query))


async def test_redirect_sign_in_with_pkce_ends_with_a_one_time_result(
    api: httpx.AsyncClient, shop: CreatedTenant, provider: OidcProvider
) -> None:
    result = await _redirect_sign_in(api, shop, "dave")
    assert "error" not in result, result
    body = {"provider": "OIDC_OAUTH", "code": result["code"], "state": result["state"]}
    url = "/self-service/v2/contacts/authenticate"
    wrong_state = await api.post(url, headers=pk(shop), json={**body, "state": "x" * 43})
    assert wrong_state.status_code == 401 and wrong_state.json()["code"] == "OIDC_RESULT_INVALID"
    traded = await api.post(url, headers=pk(shop), json=body)
    assert traded.status_code == 200, traded.text
    assert traded.json()["access_token"] and traded.json()["contact"]["id"]
    by_token = await authenticate(api, shop, provider.id_token(APP, "dave"))
    assert by_token.json()["contact"]["id"] == traded.json()["contact"]["id"]
    replay = await api.post(url, headers=pk(shop), json=body)
    assert replay.status_code == 401 and replay.json()["code"] == "OIDC_RESULT_INVALID"


async def test_redirect_sign_in_only_to_listed_urls_and_ends_with_errors_there(
    api: httpx.AsyncClient, shop: CreatedTenant, provider: OidcProvider
) -> None:
    for url in (APP_RETURN + "/", APP_RETURN + "?x=1", "https://evil.example/signed-in"):
        answer = await api.get(
            "/self-service/v2/contacts/oidc/oidc", headers=pk(shop), params={"redirect_url": url}
        )
        assert answer.status_code == 400 and answer.json()["code"] == "OIDC_REDIRECT_NOT_ALLOWED"
    # The victim's address again: the redirect ends at the app with the code to link first.
    await make_victim(api, shop)
    result = await _redirect_sign_in(api, shop, "mallory")
    assert result == {"error": "OIDC_LINK_REQUIRED", "state": result["state"]}
    unknown = await api.get(
        f"{CALLBACK_PATH.removeprefix('/self-service/v2')}", params={"state": "nope"}
    )
    assert unknown.status_code == 404  # outside the API prefix: nothing there
    forged = await api.get(CALLBACK_PATH, params={"state": "nope", "code": "x"})
    assert forged.status_code == 400 and forged.json()["code"] == "OIDC_STATE_INVALID"


async def test_a_signed_in_contact_links_by_redirect(
    api: httpx.AsyncClient, shop: CreatedTenant, provider: OidcProvider, rt: Runtime
) -> None:
    victim_id = await make_victim(api, shop)
    refused = await _redirect_sign_in(api, shop, "victim")
    assert refused["error"] == "OIDC_LINK_REQUIRED"
    bearer = await sign_in_by_code(api, shop, rt)
    result = await _redirect_sign_in(api, shop, "victim", headers=bearer)
    body = {"provider": "OIDC_OAUTH", "code": result["code"], "state": result["state"]}
    traded = await api.post("/self-service/v2/contacts/authenticate", headers=pk(shop), json=body)
    assert traded.status_code == 200 and traded.json()["contact"]["id"] == victim_id
    signed = await authenticate(api, shop, provider.id_token(APP, "victim"))
    assert signed.json()["contact"]["id"] == victim_id


async def test_a_provider_refusal_ends_at_the_app_with_an_error(
    api: httpx.AsyncClient, shop: CreatedTenant
) -> None:
    started = await api.get(
        "/self-service/v2/contacts/oidc/apple",
        headers=pk(shop),
        params={"redirect_url": APP_RETURN},
    )
    state = dict(parse_qsl(urlsplit(started.json()["authorization_url"]).query))["state"]
    ended = await api.get(CALLBACK_PATH, params={"state": state, "error": "access_denied"})
    assert ended.status_code == 303
    assert dict(parse_qsl(urlsplit(ended.headers["location"]).query)) == {
        "error": "OIDC_PROVIDER_UNAVAILABLE",
        "state": state,
    }


async def test_concurrent_callbacks_and_trades_end_a_flow_once(
    api: httpx.AsyncClient, shop: CreatedTenant
) -> None:
    started = await api.get(
        "/self-service/v2/contacts/oidc/oidc",
        headers=pk(shop),
        params={"redirect_url": APP_RETURN, "login_hint": "erin"},
    )
    with httpx.Client() as browser:
        callback = browse(browser, started.json()["authorization_url"], PUBLIC_URL + CALLBACK_PATH)
    path = callback.removeprefix(PUBLIC_URL)
    ended = await asyncio.gather(*(api.get(path) for _ in range(3)))
    assert sorted(r.status_code for r in ended) == [303, 400, 400]
    location = next(r for r in ended if r.status_code == 303).headers["location"]
    result = dict(parse_qsl(urlsplit(location).query))
    body = {"provider": "OIDC_OAUTH", "code": result["code"], "state": result["state"]}
    url = "/self-service/v2/contacts/authenticate"
    traded = await asyncio.gather(*(api.post(url, headers=pk(shop), json=body) for _ in range(3)))
    assert sorted(r.status_code for r in traded) == [200, 401, 401]
