"""The back-office console at /console/: server-rendered pages for the business's operators."""

from __future__ import annotations

import inspect
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from crm.console import activity, auth, contact_actions, contacts, overview, platform, team
from crm.console.web import LONG_CACHE, PREFIX, NeedsSignIn, page, redirect, static_files
from crm.errors import AppError, RouteNotFound
from crm.operators.errors import TotpRequired

_TYPES = {".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".js": "text/javascript"}
static_router = APIRouter(prefix=PREFIX, include_in_schema=False)


@static_router.get("/static/{digest}/{name}")
async def static(digest: str, name: str) -> Response:
    found = static_files().get(name)
    if found is None or found[0] != digest:
        raise RouteNotFound()
    suffix = name[name.rfind(".") :]
    return Response(
        found[1],
        media_type=_TYPES.get(suffix, "application/octet-stream"),
        headers={"cache-control": LONG_CACHE},
    )


@static_router.get("")
async def root() -> Response:
    return redirect(PREFIX + "/")


def install(app: FastAPI) -> None:
    """Add the console's routes and its HTML answers for errors on /console/ paths."""
    for router in (
        static_router,
        auth.router,
        overview.router,
        contacts.router,
        contact_actions.router,
        platform.router,
        team.router,
        activity.router,
    ):
        app.include_router(router)
    api_handler = app.exception_handlers[AppError]

    async def on_app_error(request: Request, exc: Exception) -> Any:
        if not request.url.path.startswith(PREFIX + "/") or not isinstance(exc, AppError):
            answer = api_handler(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        # A page, not JSON: the message and (for a form) its fields; nothing was written.
        return page(
            request,
            "error.html",
            {"visit": None, "code": exc.code, "message": exc.message, "status": exc.status_code},
            status_code=exc.status_code,
        )

    async def on_needs_sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NeedsSignIn)
        if exc.totp:
            return redirect(exc.next_path, flash=TotpRequired.message)
        return redirect(f"{PREFIX}/login?next={quote(exc.next_path, safe='/')}")

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(NeedsSignIn, on_needs_sign_in)
