"""Sign in with Apple by redirect, as Apple behaves: the scopes `name email` with form_post, the
browser posted back with a `user` JSON on the first authorization, and a client secret crm signs
with the business's key (ES256) for each code exchange.

Apple is faked in process: its discovery document, key set and token endpoint answer through
an httpx mock transport under https://appleid.apple.com, signing ID tokens RS256 as Apple does.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from crm.app import create_app
from crm.clock import FrozenClock
from crm.runtime import Runtime
from crm.social import jwks
from crm.social.redirect import CALLBACK_PATH
from crm.tenants import service as tenants
from crm.tenants.schemas import CreatedTenant
from tests.conftest import base_settings

APPLE = "https://appleid.apple.com"
PUBLIC_URL = "http://127.0.0.1:8000"
APP_RETURN = "https://app.example.com/signed-in"
SERVICES_ID = "com.example.shop.signin"
TEAM_ID = "TEAM012345"
KEY_ID = "KEY0123456"
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
SIGNING_PEM = SIGNING_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


class FakeApple:
    """Apple's endpoints: ID tokens for the codes it was told of; the token forms it received."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.codes: dict[str, dict[str, Any]] = {}
        self.forms: list[dict[str, str]] = []

    def jwk(self) -> dict[str, Any]:
        document = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {**document, "kid": "apple-1", "use": "sig", "alg": "RS256"}

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.url.host != "appleid.apple.com":
            return httpx.Response(404)
        if path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": APPLE,
                    "authorization_endpoint": APPLE + "/auth/authorize",
                    "token_endpoint": APPLE + "/auth/token",
                    "jwks_uri": APPLE + "/auth/keys",
                    "response_modes_supported": ["query", "fragment", "form_post"],
                    "scopes_supported": ["openid", "email", "name"],
                },
            )
        if path == "/auth/keys":
            return httpx.Response(200, json={"keys": [self.jwk()]})
        if path == "/auth/token" and request.method == "POST":
            form = dict(parse_qsl(request.content.decode()))
            self.forms.append(form)
            claims = self.codes.pop(form.get("code", ""), None)
            if claims is None:
                return httpx.Response(400, json={"error": "invalid_grant"})
            token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "apple-1"})
            return httpx.Response(200, json={"token_type": "Bearer", "id_token": token})
        return httpx.Response(404)


@pytest.fixture
def apple(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApple]:
    fake = FakeApple()
    transport = httpx.MockTransport(fake.handle)
    monkeypatch.setattr(
        jwks.ProviderHttp, "_client", lambda self: httpx.AsyncClient(transport=transport)
    )
    jwks.CACHE.forget(APPLE)
    yield fake
    jwks.CACHE.forget(APPLE)


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
async def shop(rt: Runtime, api: httpx.AsyncClient) -> CreatedTenant:
    """A tenant whose apple provider signs its client secrets with the business's key."""
    async with rt.sessions() as session:
        created = await tenants.create_tenant(session, rt.clock, f"Apple Shop {time.time_ns()}")
        await tenants.update_application_settings(
            session, created.application_id, {"oidc_redirect_urls": APP_RETURN}, []
        )
        await session.commit()
    body = {
        "client_id": SERVICES_ID,
        "team_id": TEAM_ID,
        "key_id": KEY_ID,
        "private_key": SIGNING_PEM,
    }
    answer = await api.put(
        "/backoffice/v1/identity_providers/apple", headers=sk(created), json=body
    )
    assert answer.status_code == 200, answer.text
    return created


def sk(tenant: CreatedTenant) -> dict[str, str]:
    return {"api_key": tenant.keys["secret_test"]}


def pk(tenant: CreatedTenant) -> dict[str, str]:
    return {"api_key": tenant.keys["public_test"]}


async def start(api: httpx.AsyncClient, tenant: CreatedTenant) -> dict[str, str]:
    started = await api.get(
        "/self-service/v2/contacts/oidc/apple",
        headers=pk(tenant),
        params={"redirect_url": APP_RETURN},
    )
    assert started.status_code == 200, started.text
    url = started.json()["authorization_url"]
    assert url.startswith(APPLE + "/auth/authorize?")
    return dict(parse_qsl(urlsplit(url).query))


def approve(apple: FakeApple, rt: Runtime, query: dict[str, str], code: str, sub: str) -> None:
    """The customer signs in at Apple: `code` will trade for an ID token of `sub`."""
    now = int(rt.clock.timestamp())
    apple.codes[code] = {
        "iss": APPLE,
        "aud": SERVICES_ID,
        "sub": sub,
        "iat": now,
        "exp": now + 600,
        "nonce": query["nonce"],
        "email": f"{sub}@privaterelay.appleid.com",
        "email_verified": "true",
    }


async def post_back(api: httpx.AsyncClient, form: dict[str, str]) -> httpx.Response:
    return await api.post(CALLBACK_PATH, data=form)


async def trade(api: httpx.AsyncClient, tenant: CreatedTenant, ended: httpx.Response) -> Any:
    assert ended.status_code == 303, ended.text
    result = dict(parse_qsl(urlsplit(ended.headers["location"]).query))
    assert "error" not in result, result
    body = {"provider": "APPLE", "code": result["code"], "state": result["state"]}
    traded = await api.post("/self-service/v2/contacts/authenticate", headers=pk(tenant), json=body)
    assert traded.status_code == 200, traded.text
    return traded.json()["contact"]


async def test_apple_posts_back_with_the_user_and_crm_signs_its_client_secret(
    api: httpx.AsyncClient, shop: CreatedTenant, apple: FakeApple, rt: Runtime
) -> None:
    query = await start(api, shop)
    assert query["scope"] == "name email" and query["response_mode"] == "form_post"
    assert query["response_type"] == "code" and query["client_id"] == SERVICES_ID
    assert query["redirect_uri"] == PUBLIC_URL + CALLBACK_PATH
    approve(apple, rt, query, "code-1", "001234.anna.0001")
    user = {"name": {"firstName": "Anna", "lastName": "Äpfel"}, "email": "other@example.com"}
    form = {
        "state": query["state"],
        "code": "code-1",
        "id_token": "not.checked.here",
        "user": json.dumps(user),
    }
    contact = await trade(api, shop, await post_back(api, form))
    assert contact["first_name"] == "Anna" and contact["last_name"] == "Äpfel"
    # The client secret is a JWT signed with the business's key, for Apple, naming the team.
    sent = apple.forms[-1]
    assert sent["client_id"] == SERVICES_ID and sent["code_verifier"]
    assert sent["redirect_uri"] == PUBLIC_URL + CALLBACK_PATH
    header = jwt.get_unverified_header(sent["client_secret"])
    assert header["alg"] == "ES256" and header["kid"] == KEY_ID
    claims = jwt.decode(
        sent["client_secret"],
        SIGNING_KEY.public_key(),
        algorithms=["ES256"],
        audience=APPLE,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == TEAM_ID and claims["sub"] == SERVICES_ID
    assert claims["iat"] == int(rt.clock.timestamp())
    assert 0 < claims["exp"] - claims["iat"] <= 3600
    # The same form again: the flow has ended.
    replay = await post_back(api, form)
    assert replay.status_code == 400 and replay.json()["code"] == "OIDC_STATE_INVALID"
    # A later sign-in of the same account never renames the contact.
    again = await start(api, shop)
    approve(apple, rt, again, "code-2", "001234.anna.0001")
    renamed = {"name": {"firstName": "Mallory", "lastName": "X"}}
    form = {"state": again["state"], "code": "code-2", "user": json.dumps(renamed)}
    same = await trade(api, shop, await post_back(api, form))
    assert same["id"] == contact["id"] and same["first_name"] == "Anna"


async def test_malformed_user_is_ignored_and_malformed_forms_are_refused(
    api: httpx.AsyncClient, shop: CreatedTenant, apple: FakeApple, rt: Runtime
) -> None:
    query = await start(api, shop)
    approve(apple, rt, query, "code-3", "001234.bert.0002")
    form = {"state": query["state"], "code": "code-3", "user": '{"name": {"firstName": '}
    contact = await trade(api, shop, await post_back(api, form))
    assert not contact.get("first_name") and not contact.get("last_name")
    # An invisible character makes a name refused, not stored.
    query = await start(api, shop)
    approve(apple, rt, query, "code-4", "001234.cleo.0003")
    user = {"name": {"firstName": "Cleo\u202e", "lastName": "Nile"}}
    form = {"state": query["state"], "code": "code-4", "user": json.dumps(user)}
    contact = await trade(api, shop, await post_back(api, form))
    assert not contact.get("first_name") and contact["last_name"] == "Nile"
    pending = await start(api, shop)
    state = pending["state"]
    url_form = {"content-type": "application/x-www-form-urlencoded"}
    padded = f"state={state}&code=c&id_token=" + "x" * 17000
    refused = [
        await api.post(CALLBACK_PATH, json={"state": state, "code": "c"}),
        await api.post(CALLBACK_PATH, content=padded, headers=url_form),
        await api.post(CALLBACK_PATH, content=f"state={state}&code=%ff", headers=url_form),
        await api.post(CALLBACK_PATH, content=f"state={state}&state=other", headers=url_form),
    ]
    for answer in refused:
        assert answer.status_code == 400 and answer.json()["code"] == "OIDC_CALLBACK_INVALID"
    # None of them ended the flow; a static client secret serves again once the key is dropped.
    static = "static-apple-secret-0123456789"
    body = {"client_id": SERVICES_ID, "client_secret": static}
    put = await api.put("/backoffice/v1/identity_providers/apple", headers=sk(shop), json=body)
    assert put.status_code == 200 and put.json()["private_key"] is None
    approve(apple, rt, pending, "code-5", "001234.dora.0004")
    await trade(api, shop, await post_back(api, {"state": state, "code": "code-5"}))
    assert apple.forms[-1]["client_secret"] == static
