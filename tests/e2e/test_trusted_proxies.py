"""The client address against the real `crm serve` process: only CRM_TRUSTED_PROXIES is believed.

uvicorn on its own believes X-Forwarded-For from any local peer; here a request from 127.0.0.1
tries to choose its address with every forwarding header, and the address crm records (on the
session) and counts (the per-client registration limit) must be the one configured trust allows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.selfservice import SEED_REGISTER, last_code, set_policy, unique_phone
from tests.support.server import CrmProcess

SPOOF = {
    "X-Forwarded-For": "203.0.113.9",
    "Forwarded": "for=203.0.113.10",
    "X-Real-IP": "203.0.113.11",
}


async def _register(
    http: httpx.AsyncClient, tenant: Any, headers: dict[str, str]
) -> httpx.Response:
    body = {**SEED_REGISTER, "identity": {**SEED_REGISTER["identity"]}}
    body["identity"]["phone_number"] = unique_phone()
    return await http.post(
        "/self-service/v1/contacts/register",
        json=body,
        headers={"api_key": tenant.keys["public_test"], **headers},
    )


async def _session_address(
    http: httpx.AsyncClient, runtime: Any, tenant: Any, headers: dict[str, str]
) -> str:
    """Register and sign in with `headers`; the address the new session was recorded under."""
    sent = await _register(http, tenant, headers)
    assert sent.status_code == 201, sent.text
    code = await last_code(runtime, tenant.id)
    grant = await http.post(
        "/self-service/v2/contacts/validate_otp",
        json={"auth_otp": sent.json()["auth_otp"], "code": code},
        headers={"api_key": tenant.keys["public_test"], **headers},
    )
    assert grant.status_code == 200, grant.text
    sessions = await http.get(
        f"/backoffice/v1/contacts/{grant.json()['contact']['id']}/sessions",
        headers={"api_key": tenant.keys["secret_test"]},
    )
    assert sessions.status_code == 200, sessions.text
    (session,) = sessions.json()
    return str(session["ip_address"])


async def test_untrusted_peer_cannot_choose_its_client_address(
    tmp_path: Path, database_url: str, runtime: Any, tenant: Any
) -> None:
    await set_policy(runtime, tenant, register_limit_per_client_hour=3)
    with CrmProcess.serve(tmp_path, database_url, CRM_WORKER_ENABLED="false") as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            assert await _session_address(http, runtime, tenant, SPOOF) == "127.0.0.1"
            # Each registration claims another address; all count against the one peer.
            statuses = [
                (await _register(http, tenant, {"X-Forwarded-For": f"198.51.100.{n}"})).status_code
                for n in range(3)
            ]
    assert statuses == [201, 201, 429]


async def test_trusted_proxy_chain_gives_the_right_most_untrusted_address(
    tmp_path: Path, database_url: str, runtime: Any, tenant: Any
) -> None:
    await set_policy(runtime, tenant, register_limit_per_client_hour=2)
    env = {"CRM_WORKER_ENABLED": "false", "CRM_TRUSTED_PROXIES": "127.0.0.1/32, ::1, 10.0.0.0/8"}
    with CrmProcess.serve(tmp_path, database_url, **env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            chain = {
                "X-Forwarded-For": "1.1.1.1, 203.0.113.9, 10.0.0.7",
                "Forwarded": "for=9.9.9.9",
            }
            assert await _session_address(http, runtime, tenant, chain) == "203.0.113.9"

            async def status(xff: str) -> int:
                return (await _register(http, tenant, {"X-Forwarded-For": xff})).status_code

            # 203.0.113.9 has used one of its two; what the client writes on the left is not read.
            assert await status("8.8.8.8, 203.0.113.9") == 201
            assert await status("8.8.4.4, 203.0.113.9") == 429
            # Another client behind the same proxy has its own allowance.
            assert await status("198.51.100.20") == 201
            # Malformed headers are counted against the proxy itself, never as a new client.
            assert await status("garbage") == 201
            assert await status("unknown,") == 201
            assert await status("[::1") == 429
