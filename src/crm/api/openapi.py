"""The OpenAPI document with the two ways of calling made explicit: api_key and the bearer token."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

SCHEMES = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "api_key",
        "description": "A public key (`pk_…`) on Self-Service, a secret key (`sk_…`) on Back-Office.",
    },
    "BearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The access token from register, validate, authenticate or refresh (the "
        "refresh token, on refresh). `api_key` is optional alongside it and must then be of the "
        "same tenant and mode.",
    },
}


_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
# What any operation can answer, whatever it declares (API.md section 2).
_ALWAYS = {
    "400": "Malformed JSON or an invalid field (`details` names them).",
    "413": "The request body is over the limit.",
    "500": "Unexpected error; logged with the request id.",
    "503": "The database is unavailable; nothing was half-written.",
}


def install(app: FastAPI) -> None:
    """Replace app.openapi with a generator that names each operation's credentials.

    Signed-in routes declare BearerAuth themselves (openapi_extra); every other operation that
    takes an `api_key` header gets ApiKey, so /docs' Authorize button fills the header in.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = spec.setdefault("components", {})
        components["securitySchemes"] = SCHEMES
        # Validation errors are 400 with the common error body here, never FastAPI's 422.
        for name in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(name, None)
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status, text in _ALWAYS.items():
                    responses.setdefault(status, {"description": text, "content": _ERROR_CONTENT})
                headers = {
                    p.get("name")
                    for p in operation.get("parameters", [])
                    if p.get("in") == "header"
                }
                if "security" not in operation and "api_key" in headers:
                    operation["security"] = [{"ApiKey": []}]
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
