"""Runs a POST handler at most once per Idempotency-Key (the HTTP side of crm.idempotency)."""

from __future__ import annotations

import logging
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
from crm.unit_of_work import session_scope

log = logging.getLogger("crm.idempotency")

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry-safe POST: the same key and body within 24 hours, from the same caller "
        "(API key; on Self-Service also the same client address), returns the first answer and "
        "has no second effect (no second message). While the first request runs, the key "
        "answers 409 `IDEMPOTENCY_KEY_IN_USE`; the same key with another body, or from another "
        "client, is 409 `IDEMPOTENCY_KEY_REUSED`; an answer with tokens is replayed only while "
        "its session lives (else 409 `IDEMPOTENCY_ANSWER_GONE`). A replay counts against the "
        "operation's rate limits like a first try.",
    ),
]


def _caller(caller: CallerKey, signed_session: str | None) -> str:
    if signed_session is not None:
        return f"session:{signed_session}"
    if caller.key_id is not None:
        return f"key:{caller.key_id}"
    return f"app:{caller.application_id}"


async def run_once(
    request: Request,
    session: AsyncSession,
    runtime: Runtime,
    caller: CallerKey,
    key: str | None,
    operation: Callable[[], Awaitable[Any]],
    *,
    status_code: int = 201,
    attempt: Callable[[], Awaitable[None]] | None = None,
    signed_session: str | None = None,
) -> Response:
    """Answer from the stored first response, or run `operation` and store its answer with it.

    Records belong to the caller: the API key (or `signed_session`, for signed-in calls) and,
    for public keys, which anyone can read from a portal, the client address too. `attempt`
    counts the request against the operation's own per-client limits: a request that does not
    run the operation (a replay, a key in use or reused) is counted before anything stored is
    compared or returned, so replays are no free guesses.

    Errors are not stored: a request that failed had no effect to protect, so its retry runs.
    `operation` may return a Response for a failure whose state must still commit (counted
    failures); that too frees the key.
    """
    if key is None:
        result = await operation()
        return result if isinstance(result, Response) else _respond(_plain(result), status_code)
    route = request.scope.get("route")
    scope = f"{request.method} {getattr(route, 'path', request.url.path)}"
    slot = service.slot(
        runtime.secret,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        caller=_caller(caller, signed_session),
        scope=scope,
        key=key,
    )
    client = None
    if caller.kind == "public" and signed_session is None:
        address = request.client.host if request.client else "unknown"
        client = service.client_digest(runtime.secret, address)
    body_hash = service.request_hash(runtime.secret, await request.body(), request.url.path)
    # Reserved in transactions of their own, before the request's transaction starts: others
    # must see the reservation at once, and on SQLite the request must hold no write lock yet.
    outcome = await service.reserve(
        runtime.sessions, runtime.clock, key=slot, client=client, body_hash=body_hash
    )
    if not isinstance(outcome, service.Reserved):
        if attempt is not None:
            await attempt()
        if isinstance(outcome, service.Busy):
            raise service.IdempotencyInFlight()
        stored = await service.replay(
            runtime.sessions,
            runtime.clock,
            runtime.secret,
            key=slot,
            found=outcome,
            client=client,
            body_hash=body_hash,
        )
        response = _respond(stored.body, stored.status_code)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    try:
        result = await operation()
        if isinstance(result, Response):
            await service.release(session, key=slot, owner=outcome.owner)
            answer = result
        else:
            body = _plain(result)
            await service.fill(
                session,
                runtime.clock,
                runtime.secret,
                key=slot,
                owner=outcome.owner,
                status_code=status_code,
                body=body,
            )
            answer = _respond(body, status_code)
        # Committed here rather than by the session dependency, so that a commit that fails
        # still frees the key below instead of leaving it held until the lease ends.
        await session.commit()
    except BaseException:
        await session.rollback()
        await _release_quietly(runtime, slot, outcome.owner)
        raise
    return answer


async def _release_quietly(runtime: Runtime, slot: service.Slot, owner: str) -> None:
    # After the request's own rollback, so on SQLite the write lock is free for this.
    try:
        async with session_scope(runtime.sessions) as free:
            await service.release(free, key=slot, owner=owner)
    except Exception:
        # The lease frees the key anyway; the request's own error is the one to report.
        log.warning("idempotency_release_failed", exc_info=True)


def _respond(body: Any, status_code: int) -> Response:
    if status_code == 204:
        return Response(status_code=204)
    return JsonResponse(body, status_code=status_code)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return value
