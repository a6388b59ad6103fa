"""The foundation's HTTP contract: key resolution, the error body, limits and operations endpoints."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from crm.api.deps import PublicKey, SecretKey, SessionDep
from crm.app import create_app
from crm.clock import Clock
from crm.runtime import Runtime
from crm.tenants import service as tenants
from crm.tenants.models import Tenant
from crm.tenants.schemas import CreatedTenant


class Echo(BaseModel):
    name: str
    count: int


def _probe_app(runtime: Runtime) -> httpx.AsyncClient:
    """The real app plus probe routes on each surface, to exercise the key dependencies alone."""
    app = create_app(runtime.settings, runtime=runtime)
    ss = APIRouter()

    @ss.get("/self-service/v2/_probe")
    async def ss_probe(caller: PublicKey) -> dict[str, str | None]:
        return {"tenant": caller.tenant_id, "mode": caller.mode, "app": caller.application_id}

    @ss.post("/self-service/v2/_echo")
    async def echo(body: Echo, caller: PublicKey) -> dict[str, str]:
        return {"name": body.name}

    @ss.get("/backoffice/v1/_probe")
    async def bo_probe(caller: SecretKey) -> dict[str, str | None]:
        return {"tenant": caller.tenant_id, "mode": caller.mode, "app": caller.application_id}

    @ss.get("/self-service/v2/_boom")
    async def boom(caller: PublicKey) -> None:
        raise RuntimeError("secret internal detail")

    app.include_router(ss)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def probe(runtime: Runtime) -> httpx.AsyncClient:
    async with _probe_app(runtime) as client:
        yield client  # type: ignore[misc]


@pytest.mark.parametrize(
    ("key_name", "surface", "status", "mode"),
    [
        ("public_test", "self-service/v2", 200, "test"),
        ("public_live", "self-service/v2", 200, "live"),
        ("secret_test", "backoffice/v1", 200, "test"),
        ("secret_live", "backoffice/v1", 200, "live"),
        ("secret_test", "self-service/v2", 403, None),
        ("secret_live", "self-service/v2", 403, None),
        ("public_test", "backoffice/v1", 403, None),
        ("public_live", "backoffice/v1", 403, None),
    ],
)
async def test_api_key_resolves_kind_and_mode_per_surface(
    probe: httpx.AsyncClient,
    tenant: CreatedTenant,
    key_name: str,
    surface: str,
    status: int,
    mode: str | None,
) -> None:
    response = await probe.get(f"/{surface}/_probe", headers={"api_key": tenant.keys[key_name]})
    assert response.status_code == status
    if status == 200:
        assert response.json()["tenant"] == tenant.id
        assert response.json()["mode"] == mode
        if key_name.startswith("public"):
            assert response.json()["app"] == tenant.application_id
        else:
            assert response.json()["app"] is None
    else:
        assert response.json()["code"] == "WRONG_KEY_KIND"


async def test_missing_and_unknown_keys_are_401(probe: httpx.AsyncClient) -> None:
    missing = await probe.get("/self-service/v2/_probe")
    assert missing.status_code == 401
    assert missing.json()["code"] == "API_KEY_MISSING"
    unknown = await probe.get("/backoffice/v1/_probe", headers={"api_key": "sk_live_nope"})
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "API_KEY_INVALID"
    huge = await probe.get("/backoffice/v1/_probe", headers={"api_key": "s" * 5000})
    assert huge.status_code == 401


async def test_revoked_key_is_refused(
    probe: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    key = tenant.keys["secret_live"]
    assert (await probe.get("/backoffice/v1/_probe", headers={"api_key": key})).status_code == 200
    async with runtime.sessions() as session:
        listed = await tenants.list_keys(session, tenant.id)
        target = next(k for k in listed if k.kind == "secret" and k.mode == "live")
        await tenants.revoke_key(session, runtime.clock, target.id)
        await session.commit()
    response = await probe.get("/backoffice/v1/_probe", headers={"api_key": key})
    assert response.status_code == 401
    assert response.json()["code"] == "API_KEY_INVALID"


async def test_key_cache_bounds_revocation_delay(
    runtime: Runtime, tenant: CreatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a cache, a revoked key keeps working only until the entry expires."""
    import types

    from crm.tenants import service
    from crm.tenants.service import KeyResolver

    # The resolver's clock, moved by hand: on a busy machine the revocation itself can take
    # longer than the TTL, and the event loop's own clock must not move.
    now = [1000.0]
    monkeypatch.setattr(service, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    resolver = KeyResolver(runtime.engine, ttl=0.2)
    key = tenant.keys["public_test"]
    assert await resolver.resolve(key) is not None
    async with runtime.sessions() as session:
        listed = await tenants.list_keys(session, tenant.id)
        target = next(k for k in listed if k.kind == "public" and k.mode == "test")
        await tenants.revoke_key(session, runtime.clock, target.id)
        await session.commit()
    now[0] += 0.19
    assert await resolver.resolve(key) is not None  # still cached
    now[0] += 0.02
    assert await resolver.resolve(key) is None


async def test_error_body_shape_for_validation_error(
    probe: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    response = await probe.post(
        "/self-service/v2/_echo", headers={"api_key": tenant.keys["public_test"]}, json={"name": 3}
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "message", "details", "request_id"}
    assert body["code"] == "INVALID_REQUEST"
    fields = {d["field"] for d in body["details"]}
    assert fields == {"name", "count"}
    assert body["request_id"] == response.headers["x-request-id"]


async def test_malformed_json_is_400(probe: httpx.AsyncClient, tenant: CreatedTenant) -> None:
    response = await probe.post(
        "/self-service/v2/_echo",
        headers={"api_key": tenant.keys["public_test"], "content-type": "application/json"},
        content=b'{"name": "x", ',
    )
    assert response.status_code == 400
    assert response.json()["code"] == "MALFORMED_JSON"


async def test_body_over_limit_is_413_declared_or_streamed(
    probe: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    headers = {"api_key": tenant.keys["public_test"], "content-type": "application/json"}
    big = b'{"name": "' + b"a" * (70 * 1024) + b'", "count": 1}'
    response = await probe.post("/self-service/v2/_echo", headers=headers, content=big)
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"

    async def chunks():  # no Content-Length: the limit must still hold
        for _ in range(80):
            yield b"a" * 1024

    streamed = await probe.post("/self-service/v2/_echo", headers=headers, content=chunks())
    assert streamed.status_code == 413


async def test_unknown_route_is_json_404(probe: httpx.AsyncClient) -> None:
    response = await probe.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json()["code"] == "ROUTE_NOT_FOUND"
    assert response.headers["x-request-id"]


async def test_unexpected_error_is_500_without_trace(
    probe: httpx.AsyncClient, tenant: CreatedTenant, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="crm.errors"):
        response = await probe.get(
            "/self-service/v2/_boom",
            headers={"api_key": tenant.keys["public_test"], "x-request-id": "req-abcdef123"},
        )
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "INTERNAL_ERROR"
    assert body["request_id"] == "req-abcdef123"
    assert "secret internal detail" not in response.text
    assert any(getattr(r, "request_id", None) == "req-abcdef123" for r in caplog.records)


async def test_insane_incoming_request_id_is_replaced(probe: httpx.AsyncClient) -> None:
    hostile = "bad id\u202e<script>".encode()
    response = await probe.get("/healthz", headers={"x-request-id": hostile})
    assert response.headers["x-request-id"].encode() != hostile
    assert len(response.headers["x-request-id"]) == 24


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"


async def test_openapi_documents_error_responses(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "ErrorBody" in spec["components"]["schemas"]
    assert set(spec["components"]["securitySchemes"]) == {"ApiKey", "BearerAuth"}
    # Generated clients name methods by operationId: duplicates would collide.
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert (await client.get("/docs")).status_code == 200
    for path, operations in spec["paths"].items():
        if not path.startswith(("/self-service", "/backoffice")):
            continue
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            # Every error an operation can give is documented with the error body.
            assert {"400", "500"} <= set(operation["responses"]), where
            assert operation.get("security"), where
            headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
            # The header is spelled as clients send it (FastAPI would document `api-key`).
            assert "api-key" not in headers, where


async def test_access_log_has_fields_and_no_key(
    probe: httpx.AsyncClient, tenant: CreatedTenant, caplog: pytest.LogCaptureFixture
) -> None:
    key = tenant.keys["public_live"]
    with caplog.at_level(logging.INFO, logger="crm.access"):
        await probe.get("/self-service/v2/_probe?x=1", headers={"api_key": key})
    records = [r for r in caplog.records if r.name == "crm.access"]
    assert records
    record = records[-1]
    assert record.path == "/self-service/v2/_probe"  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]
    assert record.tenant_id == tenant.id  # type: ignore[attr-defined]
    assert key not in caplog.text


async def test_commit_failure_is_never_answered_as_success(runtime: Runtime) -> None:
    """The unit of work commits before the response goes out: a failed commit is an error."""
    app = create_app(runtime.settings, runtime=runtime)
    router = APIRouter()

    @router.post("/backoffice/v1/_conflict")
    async def conflict(session: SessionDep) -> dict[str, str]:
        now = Clock().now()
        # Two rows with one primary key: only the commit (the first flush) finds out.
        session.add(Tenant(id="dup-tenant-id-000", name="a", created_at=now))
        session.add(Tenant(id="dup-tenant-id-000", name="b", created_at=now))
        return {"status": "created"}

    app.include_router(router)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/backoffice/v1/_conflict")
    # A constraint the commit finds is a lost race as far as the client can tell: 409, retry.
    assert response.status_code == 409
    assert response.json()["code"] == "CONCURRENT_CHANGE"
    async with runtime.sessions() as session:
        assert await session.get(Tenant, "dup-tenant-id-000") is None  # nothing half-written
