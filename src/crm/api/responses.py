"""JSON responses serialised with orjson, and the error body of API.md section 2."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse


class JsonResponse(JSONResponse):
    """A JSONResponse (so FastAPI documents a route's response_model as its answer's schema)
    rendered by orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def error_body(
    code: str, message: str, request_id: str | None, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details or [], "request_id": request_id}


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error (API.md section 2)."""

    code: str = Field(examples=["OTP_EXPIRED"], description="Stable UPPER_SNAKE identifier.")
    message: str = Field(description="A human sentence; do not parse it.")
    details: list[ErrorDetail] = Field(default_factory=list)
    request_id: str | None = Field(None, description="Quote it when reporting a problem.")


_ERROR_TEXT = {
    400: "Malformed JSON, a missing or invalid field, or a wrong or expired code.",
    401: "Missing, unknown or revoked api_key; missing, invalid or expired token.",
    403: "A valid credential that may not do this (wrong key kind, another contact).",
    404: "No such resource (also for another tenant's or mode's ids).",
    409: "The identity, contact id or code already exists.",
    413: "The request body is over the limit (64 KiB by default).",
    429: "Rate limited; the Retry-After header says when to come back.",
    500: "Unexpected error; logged with the request id.",
    502: "An outside service (an identity provider) did not answer as expected.",
    503: "The database or a dependency is unavailable; nothing was half-written.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the given statuses, plus the ones every operation can give."""
    wanted = sorted({*statuses, 400, 413, 500, 503})
    return {s: {"model": ErrorBody, "description": _ERROR_TEXT[s]} for s in wanted}
