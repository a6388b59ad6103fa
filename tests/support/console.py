"""Helpers for console tests: operators made through the service, and signing in over HTTP."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from crm.operators import service as operators
from crm.operators.activity import CLI_ACTOR
from crm.runtime import Runtime

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def make_operator(runtime: Runtime, tenant_id: str, role: str) -> str:
    """A new operator of `tenant_id` with PASSWORD; returns the email."""
    email = f"{role}-{secrets.token_hex(4)}@example.com"
    async with runtime.sessions() as session:
        await operators.create_operator(
            session,
            runtime.clock,
            tenant_id=tenant_id,
            email=email,
            role=role,
            password=PASSWORD,
            actor=CLI_ACTOR,
        )
        await session.commit()
    return email


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    form = await client.get("/console/login")
    assert form.status_code == 200
    return await client.post(
        "/console/login",
        data={
            "csrf": csrf_of(form.text),
            "email": email,
            "password": password,
            "next": "/console/",
        },
    )


@asynccontextmanager
async def signed_in_client(
    app: Any, runtime: Runtime, tenant_id: str, role: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as a new operator of `role`."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        email = await make_operator(runtime, tenant_id, role)
        answer = await sign_in(client, email)
        assert answer.status_code == 303, answer.text
        yield client


async def page_csrf(client: httpx.AsyncClient, path: str = "/console/contacts") -> str:
    answer = await client.get(path)
    assert answer.status_code == 200, answer.text
    return csrf_of(answer.text)
