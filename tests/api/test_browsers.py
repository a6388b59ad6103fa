"""What browsers are told: nosniff and no-store on answers, CORS per application, /metrics, /docs."""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import httpx
import pytest

from crm.app import create_app
from crm.runtime import Runtime
from crm.tenants import service as tenants
from tests.support.selfservice import bearer, key, set_policy, sign_in_by_phone

V2 = "/self-service/v2"


def origin() -> str:
    # Every test its own origins: the preflight judges by every application in the database.
    return f"https://portal-{secrets.token_hex(4)}.example.com"


def preflight_headers(from_origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": from_origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "api_key, content-type",
    }


async def _exists(client: Any, tenant: Any, from_origin: str) -> httpx.Response:
    return await client.get(
        f"{V2}/contacts",
        params={"email_address": "someone@example.com"},
        headers={**key(tenant), "Origin": from_origin},
    )


# --- headers on every answer ----------------------------------------------------------------


async def test_every_answer_says_nosniff(client: Any, tenant: Any) -> None:
    for response in [
        await client.get("/healthz"),
        await client.get("/no/such/route"),
        await client.get(f"{V2}/contacts", headers={"api_key": "pk_test_wrong"}),
        await client.get("/.well-known/jwks.json"),
    ]:
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_token_answers_are_never_cached(client: Any, runtime: Any, tenant: Any) -> None:
    grant = await sign_in_by_phone(client, runtime, tenant)
    refreshed = await client.post(
        f"{V2}/contacts/refresh", headers={"Authorization": grant["refresh_token"]}
    )
    assert refreshed.status_code == 200
    assert refreshed.headers["cache-control"] == "no-store"
    assert refreshed.headers["pragma"] == "no-cache"
    profile = await client.get(
        f"{V2}/contacts/{grant['contact']['id']}", headers=bearer(refreshed.json()["access_token"])
    )
    assert profile.headers["cache-control"] == "no-store"
    # The one public document keeps its own caching.
    jwks = await client.get("/.well-known/jwks.json")
    assert jwks.headers["cache-control"] == "public, max-age=300"
    assert "pragma" not in jwks.headers


# --- CORS -------------------------------------------------------------------------------------


async def test_preflight_from_an_allowed_origin_is_answered(
    client: Any, runtime: Any, tenant: Any
) -> None:
    portal = origin()
    await set_policy(runtime, tenant, allowed_origins=f"{portal},https://other.example")
    response = await client.options(f"{V2}/contacts/register", headers=preflight_headers(portal))
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == portal
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"]
    assert "api_key" in allowed and "authorization" in allowed and "content-type" in allowed
    assert "access-control-allow-credentials" not in response.headers
    assert "Origin" in response.headers["vary"]


async def test_preflight_from_another_origin_is_refused(
    client: Any, runtime: Any, tenant: Any
) -> None:
    portal = origin()
    await set_policy(runtime, tenant, allowed_origins=portal)
    for stranger in [
        origin(),
        portal + ".evil.example",
        portal.replace("https://", "http://"),
        portal + ":8443",
        "null",
        portal.upper(),
    ]:
        response = await client.options(
            f"{V2}/contacts/register", headers=preflight_headers(stranger)
        )
        assert response.status_code == 403, stranger
        assert response.json()["code"] == "ORIGIN_NOT_ALLOWED"
        assert "access-control-allow-origin" not in response.headers


async def test_preflight_for_a_method_no_route_has_is_refused(
    client: Any, runtime: Any, tenant: Any
) -> None:
    portal = origin()
    await set_policy(runtime, tenant, allowed_origins=portal)
    response = await client.options(
        f"{V2}/contacts/register", headers=preflight_headers(portal, "TRACE")
    )
    assert response.status_code == 403


async def test_answer_carries_cors_only_for_its_own_applications_origins(
    client: Any, runtime: Any, tenant: Any
) -> None:
    portal, others = origin(), origin()
    await set_policy(runtime, tenant, allowed_origins=portal)
    async with runtime.sessions() as session:
        other = await tenants.create_tenant(session, runtime.clock, "Other portal business")
        await session.commit()
    await set_policy(runtime, other, allowed_origins=others)

    mine = await _exists(client, tenant, portal)
    assert mine.status_code == 200
    assert mine.headers["access-control-allow-origin"] == portal
    assert "x-request-id" in mine.headers["access-control-expose-headers"]
    assert "retry-after" in mine.headers["access-control-expose-headers"]
    assert "access-control-allow-credentials" not in mine.headers
    assert "Origin" in mine.headers["vary"]
    # The preflight of the other business's origin passes (the union), its answer does not.
    assert (
        await client.options(f"{V2}/contacts", headers=preflight_headers(others, "GET"))
    ).status_code == 204
    theirs = await _exists(client, tenant, others)
    assert "access-control-allow-origin" not in theirs.headers
    assert "access-control-allow-origin" not in (await _exists(client, tenant, "null")).headers


async def test_signed_in_answer_is_judged_by_the_tokens_application(
    client: Any, runtime: Any, tenant: Any
) -> None:
    portal = origin()
    grant = await sign_in_by_phone(client, runtime, tenant)
    path = f"{V2}/contacts/{grant['contact']['id']}"
    headers = {**bearer(grant["access_token"]), "Origin": portal}
    assert "access-control-allow-origin" not in (await client.get(path, headers=headers)).headers
    await set_policy(runtime, tenant, allowed_origins=portal)
    answer = await client.get(path, headers=headers)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == portal


async def test_wildcard_is_answered_as_a_wildcard_never_with_credentials(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await set_policy(runtime, tenant, allowed_origins="*")
    try:
        anyone = origin()
        answer = await _exists(client, tenant, anyone)
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in answer.headers
        flight = await client.options(f"{V2}/contacts", headers=preflight_headers(anyone, "GET"))
        assert flight.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in flight.headers
        # Even an application open to every origin is not open to `null` (any sandboxed page).
        refused = await client.options(f"{V2}/contacts", headers=preflight_headers("null", "GET"))
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in (await _exists(client, tenant, "null")).headers
    finally:
        # The preflight judges by every application: leave no wildcard for other tests.
        await set_policy(runtime, tenant)


async def test_back_office_answers_no_browser(client: Any, runtime: Any, tenant: Any) -> None:
    portal = origin()
    await set_policy(runtime, tenant, allowed_origins=portal)
    flight = await client.options("/backoffice/v1/contacts", headers=preflight_headers(portal))
    assert "access-control-allow-origin" not in flight.headers
    listed = await client.get(
        "/backoffice/v1/contacts",
        headers={"api_key": tenant.keys["secret_test"], "Origin": portal},
    )
    assert listed.status_code == 200
    assert "access-control-allow-origin" not in listed.headers


async def test_requests_without_origin_get_no_cors_headers(client: Any, tenant: Any) -> None:
    response = await client.get(
        f"{V2}/contacts", params={"email_address": "a@example.com"}, headers=key(tenant)
    )
    assert not [h for h in response.headers if h.startswith("access-control-")]


# --- /metrics and /docs ------------------------------------------------------------------


@pytest.fixture
def configured(runtime: Runtime) -> Any:
    """A client of an app built with other settings over the same database."""

    def build(**values: Any) -> httpx.AsyncClient:
        settings = runtime.settings.model_copy(update=values)
        app = create_app(settings, runtime=dataclasses.replace(runtime, settings=settings))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    return build


async def test_metrics_in_production_without_a_token_are_not_served(configured: Any) -> None:
    async with configured(env="production", metrics_token=None) as client:
        response = await client.get("/metrics")
        assert response.status_code == 404
        assert response.json()["code"] == "ROUTE_NOT_FOUND"
        with_guess = await client.get("/metrics", headers={"Authorization": "Bearer x"})
        assert with_guess.status_code == 404


@pytest.mark.parametrize("env", ["production", "development"])
async def test_metrics_token_is_required_when_set(configured: Any, env: str) -> None:
    from pydantic import SecretStr

    token = secrets.token_urlsafe(24)
    async with configured(env=env, metrics_token=SecretStr(token)) as client:
        for authorization in [
            None,
            "",
            token,
            f"Basic {token}",
            f"Bearer {token[:-1]}",
            f"Bearer {token}x",
            f"Bearer {token.upper()}",
            "Bearer ",
        ]:
            headers = {"Authorization": authorization} if authorization is not None else {}
            refused = await client.get("/metrics", headers=headers)
            assert refused.status_code == 401, authorization
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "crm_" not in refused.text
        served = await client.get("/metrics", headers={"Authorization": f"bearer  {token}"})
        assert served.status_code == 200
        assert "crm_outbox_gauges_up" in served.text


async def test_docs_can_be_turned_off(configured: Any) -> None:
    async with configured(docs_enabled=False) as client:
        for path in ["/docs", "/openapi.json"]:
            assert (await client.get(path)).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
    async with configured(docs_enabled=True) as client:
        assert (await client.get("/openapi.json")).status_code == 200
