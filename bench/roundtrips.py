"""Database round trips per request of the sign-up and signed-in flows, on PostgreSQL.

Usage:

    python bench/roundtrips.py [--trace]

Creates its own database (`crm_bench_<random>`), runs the app in process (httpx's ASGI
transport, no worker: message delivery is not counted) and counts, per request, the messages
asyncpg sends that wait for an answer: statements with or without parameters (the engine's and
the read pool's), BEGIN/COMMIT/ROLLBACK, the engine's checkout ping and statement preparation.
Each flow runs once to warm the statement caches, then once counted. The database is dropped
at the end, also on failure.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx

from crm.app import create_app
from crm.clock import FrozenClock
from crm.messaging.outbox import open_body
from crm.migrate import upgrade
from crm.runtime import Runtime
from crm.settings import Settings
from crm.tenants import service as tenants

PG_ADMIN = os.environ.get("CRM_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-secret-" + "z" * 40
TRACE_ON = "--trace" in sys.argv
COUNTS: collections.Counter[str] = collections.Counter()
TRACE: list[str] = []  # the statements of the request being measured (--trace prints them)


def _count(owner: Any, name: str, label: str, when: Callable[..., bool] | None = None) -> None:
    """Wrap one asyncpg coroutine method so each call that reaches the server is counted."""
    original = getattr(owner, name)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        if when is None or when(*args, **kwargs):
            COUNTS[label] += 1
            query = getattr(args[0], "_query", None) or (args[1] if len(args) > 1 else "")
            TRACE.append(" ".join(str(query).split())[:100])
        return await original(*args, **kwargs)

    setattr(owner, name, counted)


def instrument() -> None:
    # execute() without arguments is a simple query (BEGIN, COMMIT, ROLLBACK, SET ...); with
    # arguments it goes through _execute like fetch/fetchrow/fetchval, counted below.
    _count(asyncpg.Connection, "execute", "simple query", lambda self, q, *a, **k: not a)
    _count(asyncpg.Connection, "_execute", "statement (connection)")
    _count(asyncpg.Connection, "prepare", "prepare")
    # A batch of rows for one statement (the ORM's flush of several rows of one table): the
    # rows are pipelined and answered together, one round trip.
    _count(asyncpg.Connection, "executemany", "statement (executemany)")
    prepared = asyncpg.prepared_stmt.PreparedStatement
    _count(prepared, "_PreparedStatement__bind_execute", "statement (prepared)")


async def code_from_outbox(db_url: str, after: int) -> tuple[str, int]:
    conn = await asyncpg.connect(db_url)
    try:
        for _ in range(50):  # bounded: the row is committed before the answer is sent
            rows = await conn.fetch(
                "SELECT body_text FROM outbox_messages WHERE purpose = 'OTP' ORDER BY created_at"
            )
            if len(rows) > after:
                text = open_body(SECRET, rows[-1]["body_text"])
                match = re.search(r"\b(\d{6})\b", text)
                assert match is not None
                return match.group(1), len(rows)
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    raise RuntimeError("no code in the outbox")


async def run(db_url: str) -> dict[str, dict[str, int]]:
    settings = Settings(
        database_url=db_url,
        secret_key=SECRET,
        worker_enabled=False,
        sms_range_mode="off",
        sms_conversion_mode="off",
        _env_file=None,
    )
    # A clock the script moves: a second code for one number is refused for a while.
    clock = FrozenClock()
    runtime = Runtime.build(settings, clock=clock)
    async with runtime.sessions() as session:
        tenant = await tenants.create_tenant(session, runtime.clock, "Bench")
        await session.commit()
    key = {"api_key": tenant.keys["public_test"]}
    app = create_app(settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    results: dict[str, dict[str, int]] = {}
    sent = 0
    instrument()
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

            async def measure(
                label: str, call: Awaitable[httpx.Response], ok: int, record: bool
            ) -> httpx.Response:
                COUNTS.clear()
                TRACE.clear()
                response = await call
                assert response.status_code == ok, (label, response.status_code, response.text)
                if record:
                    results[label] = {**dict(COUNTS), "total": sum(COUNTS.values())}
                    if TRACE_ON:
                        print(f"--- {label}", *TRACE, sep="\n  ")
                return response

            for number, record in (("99478231", False), ("99478232", True)):
                phone = {"provider": "PHONE", "phone_number": number, "country_code": "CYP"}
                body = {"first_name": "A", "last_name": "B", "identity": phone}
                body["service_acceptance"] = "true"
                path = "/self-service/v1/contacts/register"
                registered = (
                    await measure(
                        "register", client.post(path, json=body, headers=key), 201, record
                    )
                ).json()
                code, sent = await code_from_outbox(db_url, sent)
                check = {"auth_otp": registered["auth_otp"], "code": code}
                path = "/self-service/v2/contacts/validate_otp"
                tokens = (
                    await measure(
                        "validate", client.post(path, json=check, headers=key), 200, record
                    )
                ).json()
                contact = tokens["contact"]["id"]
                bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
                path = f"/self-service/v2/contacts/{contact}"
                await measure("signed-in read", client.get(path, headers=bearer), 200, record)
                path = "/self-service/v1/contacts/refresh"
                refreshed = (
                    await measure(
                        "refresh",
                        client.post(path, headers={"Authorization": tokens["refresh_token"]}),
                        200,
                        record,
                    )
                ).json()
                path = "/self-service/v1/contacts/authenticate"
                clock.advance(300)
                await measure(
                    "authenticate (code)", client.post(path, json=phone, headers=key), 200, record
                )
                _, sent = await code_from_outbox(db_url, sent)
                bearer = {"Authorization": f"Bearer {refreshed['access_token']}"}
                path = f"/self-service/v2/contacts/{contact}/sign_out"
                await measure("sign-out", client.post(path, headers=bearer), 204, record)
    finally:
        await runtime.close()
    return results


def main() -> None:
    name = f"crm_bench_{secrets.token_hex(5)}"
    db_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(Settings(database_url=db_url, secret_key=SECRET, _env_file=None))
        results = asyncio.run(run(db_url))
        for label, counts in results.items():
            detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "total")
            print(f"{label:22} {counts['total']:3} round trips ({detail})")
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
