"""The API reference: stable operationIds, descriptions and clean schema names in /openapi.json,
and /docs and /redoc served from this server's own files (no CDN), switched off together."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from crm.api.docs import STATIC_PREFIX
from crm.api.openapi import OPERATION_IDS
from crm.app import create_app
from tests.conftest import base_settings

READABLE_ID = re.compile(r"^[a-z][A-Za-z0-9]+$")


@pytest.fixture
async def docs_client() -> AsyncIterator[httpx.AsyncClient]:
    # No database: the documents and pages are built from the routes alone.
    app = create_app(base_settings(database_url="sqlite:///unused.db"))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    ]


async def test_every_operation_has_an_operation_id_in_the_table(
    docs_client: httpx.AsyncClient,
) -> None:
    spec = (await docs_client.get("/openapi.json")).json()
    documented = {(method, path) for method, path, _ in _operations(spec)}
    missing = sorted(documented - set(OPERATION_IDS))
    assert not missing, f"add these to OPERATION_IDS in src/crm/api/openapi.py: {missing}"
    # And no entry names an operation that no longer exists.
    stale = sorted(set(OPERATION_IDS) - documented)
    assert not stale, f"remove these from OPERATION_IDS: {stale}"
    for method, path, operation in _operations(spec):
        assert operation["operationId"] == OPERATION_IDS[method, path]


async def test_operation_ids_are_unique_readable_and_described(
    docs_client: httpx.AsyncClient,
) -> None:
    spec = (await docs_client.get("/openapi.json")).json()
    operations = _operations(spec)
    ids = [operation["operationId"] for _, _, operation in operations]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for method, path, operation in operations:
        where = f"{method} {path}"
        assert READABLE_ID.match(operation["operationId"]), (where, operation["operationId"])
        assert operation.get("summary"), where
        assert operation.get("description", "").strip(), where
        for status, response in operation["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            # A JSON object documented as a string makes generated clients parse it as one.
            assert not (status.startswith("2") and schema == {"type": "string"}), where
    by_id = {operation["operationId"]: (m, p) for m, p, operation in operations}
    assert by_id["registerContact"] == ("POST", "/self-service/v2/contacts/register")
    assert by_id["registerContactV1"] == ("POST", "/self-service/v1/contacts/register")
    assert by_id["validateOtp"] == ("POST", "/self-service/v2/contacts/validate_otp")
    assert by_id["createContact"] == ("POST", "/backoffice/v1/contacts")


async def test_schema_names_are_unique_and_free_of_module_paths(
    docs_client: httpx.AsyncClient,
) -> None:
    spec = (await docs_client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    for name in schemas:
        assert re.match(r"^[A-Z][A-Za-z0-9]*$", name), name
    # Case-insensitively too: generated files are named after the models.
    assert len({name.lower() for name in schemas}) == len(schemas)
    # The two models of each shared name are both there, under distinct names.
    for name in ("CustomField", "DateOfBirth", "Demographics", "PhoneIn"):
        assert name in schemas and f"SelfService{name}" in schemas
    text = (await docs_client.get("/openapi.json")).text
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', text))
    assert refs <= set(schemas), refs - set(schemas)
    assert "crm__" not in text


async def test_docs_pages_load_only_this_servers_files(docs_client: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc"):
        page = await docs_client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        # No absolute URL: every script, style and icon comes from this server.
        assert "http://" not in page.text and "https://" not in page.text, page.text
        # No inline script: the policy allows scripts from this server only.
        assert re.findall(r"<script[^>]*>\s*[^<\s]", page.text) == [], page.text
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "connect-src 'self'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets and all(a.startswith(STATIC_PREFIX + "/") for a in assets), assets
        for asset in assets:
            served = await docs_client.get(asset)
            assert served.status_code == 200, asset
            assert "max-age=31536000" in served.headers["cache-control"], asset
            assert served.content, asset
    assert "swagger-init.js" in (await docs_client.get("/docs")).text
    assert "spec-url=" in (await docs_client.get("/redoc")).text


async def test_docs_static_files_refuse_other_names(docs_client: httpx.AsyncClient) -> None:
    page = (await docs_client.get("/docs")).text
    tag = re.search(STATIC_PREFIX + r"/([^/]+)/", page)
    assert tag
    for name in (
        "../__init__.py",
        "..%2F__init__.py",
        "core.py",
        "consts.py",
        "swagger-ui.css.map",
        "%2e%2e%2fcore.py",
        "",
    ):
        answer = await docs_client.get(f"{STATIC_PREFIX}/{tag.group(1)}/{name}")
        assert answer.status_code == 404, name
        assert "max-age" not in answer.headers.get("cache-control", ""), name
    # Another install's version is not served under this one's long cache.
    stale = await docs_client.get(f"{STATIC_PREFIX}/0.0.0-0.0.0/swagger-ui.css")
    assert stale.status_code == 404
    assert stale.json()["code"] == "ROUTE_NOT_FOUND"


async def test_docs_disabled_serves_no_page_file_or_document() -> None:
    app = create_app(base_settings(database_url="sqlite:///unused.db", docs_enabled=False))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for path in (
            "/docs",
            "/redoc",
            "/openapi.json",
            "/docs/oauth2-redirect",
            f"{STATIC_PREFIX}/x/swagger-ui-bundle.js",
        ):
            assert (await client.get(path)).status_code == 404, path
