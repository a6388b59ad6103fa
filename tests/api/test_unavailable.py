"""When the database does not answer, the API says 503 with a clear code, never 500."""

from __future__ import annotations

import httpx
from fastapi import APIRouter

from crm.api.deps import SecretKey
from crm.app import create_app
from crm.runtime import Runtime
from tests.conftest import base_settings
from tests.support.http_sink import free_port


async def test_database_down_is_503_not_500() -> None:
    # A port nothing listens on: every connection attempt is refused at once.
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/crm"
    runtime = Runtime.build(base_settings(database_url=url))
    app = create_app(runtime.settings, runtime=runtime)
    probe = APIRouter()

    @probe.get("/backoffice/v1/_probe")
    async def needs_key(caller: SecretKey) -> dict[str, str]:
        return {"tenant": caller.tenant_id}

    app.include_router(probe)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["code"] == "SERVICE_UNAVAILABLE"
            assert (await client.get("/healthz")).status_code == 200
            keyed = await client.get("/backoffice/v1/_probe", headers={"api_key": "sk_live_x"})
            assert keyed.status_code == 503
            assert keyed.json()["code"] == "SERVICE_UNAVAILABLE"
    finally:
        await runtime.close()
