"""The single error mapper: AppError, validation errors and HTTP errors all become API.md section 2."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from crm.api.responses import JsonResponse, error_body
from crm.api.wording import plain_message
from crm.errors import (
    AppError,
    ConcurrentChange,
    MethodNotAllowed,
    RouteNotFound,
    ServiceUnavailable,
)

log = logging.getLogger("crm.errors")


def request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def app_error_response(request: Request, exc: AppError) -> JsonResponse:
    return JsonResponse(
        error_body(exc.code, exc.message, request_id(request), exc.details),
        status_code=exc.status_code,
        headers=exc.headers or None,
    )


async def _on_app_error(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, AppError)
    return app_error_response(request, exc)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    # Union and tagged-union members add their type names to loc; they mean nothing to a client.
    return ".".join(p for p in parts if not p.startswith("function-") and "[" not in p) or "body"


async def _on_validation_error(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return JsonResponse(
            error_body(
                "MALFORMED_JSON", "The request body is not valid JSON.", request_id(request)
            ),
            status_code=400,
        )
    details = [
        {"field": _field(tuple(e.get("loc", ()))), "message": plain_message(e)} for e in errors
    ]
    return JsonResponse(
        error_body("INVALID_REQUEST", "The request is not valid.", request_id(request), details),
        status_code=400,
    )


async def _on_http_error(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, HTTPException)
    error: AppError
    if exc.status_code == 404:
        error = RouteNotFound()
    elif exc.status_code == 405:
        error = MethodNotAllowed()
    else:
        error = AppError(str(exc.detail))
        error.status_code = exc.status_code
        error.code = "HTTP_ERROR"
    return app_error_response(request, error)


async def _on_database_unavailable(request: Request, exc: Exception) -> JsonResponse:
    # A lost connection or a full pool: the transaction was rolled back, so nothing is half-written.
    log.warning(
        "database unavailable: %s", type(exc).__name__, extra={"request_id": request_id(request)}
    )
    return app_error_response(request, ServiceUnavailable())


async def _on_integrity_error(request: Request, exc: Exception) -> JsonResponse:
    # A unique constraint or lock that a concurrent request won (two people proving one address at the
    # same instant, two writers of one counter row): the services check first, so this is only
    # the loser of a race. The transaction was rolled back; the client may simply retry.
    log.warning(
        "lost a race to a concurrent request (%s); rolled back",
        type(getattr(exc, "orig", exc)).__name__,
        extra={"request_id": request_id(request)},
    )
    return app_error_response(request, ConcurrentChange())


# PostgreSQL's "deadlock detected" and "could not serialize": the database chose this request
# as the loser of a race and rolled it back, so retrying is safe.
_LOST_RACE_STATES = frozenset({"40P01", "40001"})
# "canceling statement due to statement timeout" and "lock not available".
_BUSY_STATES = frozenset({"57014", "55P03"})


async def _on_database_error(request: Request, exc: Exception) -> JsonResponse:
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if state in _LOST_RACE_STATES:
        return await _on_integrity_error(request, exc)
    if state in _BUSY_STATES:
        # The statement timeout (or a lock timeout) cancelled a statement that waited too long,
        # usually on a row many requests update at once under overload: the transaction was
        # rolled back, and the client may retry later.
        return await _on_database_unavailable(request, exc)
    if getattr(exc, "connection_invalidated", False):
        # The connection was cut under the request (a restart, a failover): the driver raises an
        # InterfaceError, not an OperationalError, and the pool has already been invalidated.
        return await _on_database_unavailable(request, exc)
    raise exc


def install(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _on_app_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(OperationalError, _on_database_unavailable)
    app.add_exception_handler(IntegrityError, _on_integrity_error)
    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_exception_handler(PoolTimeout, _on_database_unavailable)
    app.add_exception_handler(ConnectionError, _on_database_unavailable)
    app.add_exception_handler(OSError, _on_database_unavailable)
