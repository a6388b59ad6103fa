"""/healthz, answered by the request middleware itself, answers as the declared route would."""

from __future__ import annotations

from typing import Any

from crm.metrics import REGISTRY


async def test_healthz_answers_the_declared_json_with_the_usual_headers(client: Any) -> None:
    before = REGISTRY.http_requests.value("GET", "/healthz", "200")
    response = await client.get("/healthz", headers={"x-request-id": "probe-12345678"})
    assert response.status_code == 200
    assert response.content == b'{"status":"ok"}'
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == "15"
    assert response.headers["x-request-id"] == "probe-12345678"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    # Counted under its route template, not as an unmatched path.
    assert REGISTRY.http_requests.value("GET", "/healthz", "200") == before + 1


async def test_healthz_with_a_query_is_still_ok_and_a_nul_is_still_refused(client: Any) -> None:
    assert (await client.get("/healthz?probe=1")).json() == {"status": "ok"}
    refused = await client.get("/healthz?probe=%00")
    assert refused.status_code == 400
    assert refused.json()["code"] == "INVALID_REQUEST"


async def test_other_methods_and_paths_still_go_through_the_routes(client: Any) -> None:
    assert (await client.post("/healthz", content=b"{}")).status_code == 405
    assert (await client.delete("/healthz")).status_code == 405
    assert (await client.get("/healthz/")).status_code in (307, 404)
    assert (await client.get("/HEALTHZ")).status_code == 404
