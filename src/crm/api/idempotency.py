"""Runs a POST handler at most once per Idempotency-Key (the HTTP side of crm.idempotency)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Header, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crm.api.responses import JsonResponse
from crm.idempotency import service
from crm.runtime import Runtime
from crm.tenants.schemas import CallerKey

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry-safe POST: the same key and body within 24 hours returns the first "
        "answer and has no second effect; the same key with another body is 409.",
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
) -> JsonResponse:
    """Answer from the stored first response, or run `operation` and store its answer with it."""
    if key is None:
        return JsonResponse(_plain(await operation()), status_code=status_code)
    route = request.scope.get("route")
    scope = f"{request.method} {getattr(route, 'path', request.url.path)}"
    body_hash = service.request_hash(await request.body(), request.url.path)
    common = {"tenant_id": caller.tenant_id, "mode": caller.mode, "scope": scope, "key": key}
    stored = await service.lookup(session, runtime.clock, body_hash=body_hash, **common)
    if stored is not None:
        response = JsonResponse(stored.body, status_code=stored.status_code)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    body = _plain(await operation())
    await service.remember(
        session, runtime.clock, body_hash=body_hash, status_code=status_code, body=body, **common
    )
    return JsonResponse(body, status_code=status_code)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return value
