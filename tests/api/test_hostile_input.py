"""Every documented operation answers hostile input with a 4xx and the error body, never a 5xx.

The operations come from the app's own OpenAPI document, so endpoints added later are swept
too. Each gets wrong types, oversized and unicode-trick strings, deep nesting and junk
credentials, with the right kind of key for its surface so the handlers themselves run.
"""

from __future__ import annotations

from typing import Any

import httpx

from crm.tenants.schemas import CreatedTenant

HOSTILE_VALUES: list[Any] = [
    None,
    True,
    -1,
    10**30,
    1.5e308,
    "",
    " ",
    "x" * 5000,
    "\u202e\u200b\ufeffadmin",
    "' OR 1=1 --",
    "%_%",
    "../../etc/passwd",
    "\x00\x01",
    "１２３４５６",
    "+357 99 12-34.56",
    "a@b",
    [],
    [None],
    {},
    {"$gt": ""},
]

PATH_VALUES = ["x", "0" * 40, "%2e%2e", "nonexistent-contact", "’\u202e"]


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"a": [value]}
    return value


def _bodies(schema_fields: list[str]) -> list[Any]:
    bodies: list[Any] = [[], "string", 123, None, _nested(200)]
    fields = schema_fields or ["identity", "email", "code", "first_name"]
    for value in HOSTILE_VALUES:
        bodies.append(dict.fromkeys(fields, value))
    return bodies


def _fields(spec: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = content.get("schema", {})
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return list(schema.get("properties", {}))[:30]


def _headers(path: str, tenant: CreatedTenant) -> list[dict[str, str]]:
    if path.startswith("/backoffice"):
        key = tenant.keys["secret_live"]
    elif path.startswith("/self-service"):
        key = tenant.keys["public_live"]
    else:
        return [{}]
    return [
        {"api_key": key},
        {"api_key": key, "authorization": "Bearer not.a.jwt"},
        {"authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."},
    ]


async def test_no_operation_answers_hostile_input_with_a_5xx(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    spec = (await client.get("/openapi.json")).json()
    failures: list[str] = []
    requests = 0
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "delete", "patch"}:
                continue
            for path_value in PATH_VALUES:
                path = template
                for param in operation.get("parameters", []):
                    if param.get("in") == "path":
                        path = path.replace("{" + param["name"] + "}", path_value)
                for headers in _headers(template, tenant):
                    bodies = (
                        _bodies(_fields(spec, operation))
                        if method in {"post", "put", "patch"}
                        else [None]
                    )
                    for body in bodies:
                        params = {"email_address": "x" * 300, "page": "-1", "size": "1000000"}
                        response = await client.request(
                            method.upper(), path, headers=headers, json=body, params=params
                        )
                        requests += 1
                        if response.status_code >= 500:
                            failures.append(
                                f"{method.upper()} {path} {body!r:.80} -> {response.status_code} {response.text[:200]}"
                            )
                        elif response.status_code >= 400:
                            payload = response.json()
                            if not isinstance(payload, dict) or not {
                                "code",
                                "message",
                                "request_id",
                            } <= set(payload):
                                failures.append(
                                    f"{method.upper()} {path}: error body {payload!r:.120}"
                                )
                # Path values only matter for templated paths.
                if "{" not in template:
                    break
    assert requests > 0
    assert failures == [], "\n".join(failures[:20])


async def test_nul_characters_are_400_on_every_route(
    client: httpx.AsyncClient, runtime: Any, tenant: CreatedTenant
) -> None:
    # PostgreSQL text cannot hold U+0000: each of these reached a query and answered 500 there.
    from tests.support.selfservice import bearer, key, sign_in_by_phone

    secret = {"api_key": tenant.keys["secret_test"]}
    signed = await sign_in_by_phone(client, runtime, tenant)
    own = f"/self-service/v2/contacts/{signed['contact']['id']}"
    answers = [
        await client.get("/backoffice/v1/contacts/%00", headers=secret),
        await client.get(
            "/backoffice/v1/contacts", params={"search_value": "\x00"}, headers=secret
        ),
        await client.post(
            "/self-service/v2/contacts/validate_otp",
            json={"auth_otp": "\x00", "code": "123456"},
            headers=key(tenant),
        ),
        await client.put(own, json={"first_name": "A\x00"}, headers=bearer(signed["access_token"])),
        await client.put(
            own,
            json={"custom_fields": [{"key": "k", "value": "\x00"}]},
            headers=bearer(signed["access_token"]),
        ),
    ]
    for response in answers:
        assert response.status_code == 400, (response.request.url, response.text)
        assert response.json()["code"] == "INVALID_REQUEST"
    # An escaped backslash before "u0000" is the literal text, not a NUL.
    literal = await client.put(
        own, json={"first_name": "A\\u0000"}, headers=bearer(signed["access_token"])
    )
    assert literal.status_code == 200, literal.text
