"""Runs a POST handler at most once per Idempotency-Key (the HTTP side of crm.idempotency)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Header, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from crm.api.responses import JsonResponse
from crm.idempotency import service
from crm.runtime import Runtime
from crm.tenants.schemas import CallerKey

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry-safe POST: the same key and body within 24 hours returns the first "
        "answer and has no second effect (no second message); the same key with another body "
        "is 409.",
    ),
]


async def run_once(
    request: Request,
    session: AsyncSession,
    runtime: Runtime,
    caller: CallerKey,
    key: str | None,
    operation: Callable[[], Awaitable[Any]],
    *,
    status_code: int = 201,
) -> Response:
    """Answer from the stored first response, or run `operation` and store its answer with it.

    Errors are not stored: a request that failed had no effect to protect, so its retry runs.
    """
    if key is None:
        return _respond(_plain(await operation()), status_code)
    route = request.scope.get("route")
    scope = f"{request.method} {getattr(route, 'path', request.url.path)}"
    body_hash = service.request_hash(await request.body(), request.url.path)
    common = {"tenant_id": caller.tenant_id, "mode": caller.mode, "scope": scope, "key": key}
    # Looked up in a session of its own, so the request's transaction does not start before the
    # operation: some operations count rate limits in a transaction of their own first.
    async with runtime.sessions() as lookup_session:
        stored = await service.lookup(
            lookup_session, runtime.clock, runtime.secret, body_hash=body_hash, **common
        )
    if stored is not None:
        response = _respond(stored.body, stored.status_code)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    body = _plain(await operation())
    await service.remember(
        session,
        runtime.clock,
        runtime.secret,
        body_hash=body_hash,
        status_code=status_code,
        body=body,
        **common,
    )
    return _respond(body, status_code)


def _respond(body: Any, status_code: int) -> Response:
    if status_code == 204:
        return Response(status_code=204)
    return JsonResponse(body, status_code=status_code)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return value
