"""Operational endpoints: liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from crm.api.deps import RuntimeDep
from crm.api.responses import JsonResponse, error_body, error_responses
from crm.db import read_connection

router = APIRouter(tags=["Operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


# Liveness is probed often and its answer never changes, so the request middleware sends these
# prepared messages itself (same body and headers as the route above, which stays declared).
HEALTHZ_PATH = "/healthz"
HEALTHZ_ROUTE = router.routes[-1]
_HEALTHZ_BODY = JsonResponse({"status": "ok"}).body
HEALTHZ_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-length", str(len(_HEALTHZ_BODY)).encode()),
        (b"content-type", b"application/json"),
    ],
}
HEALTHZ_BODY = {"type": "http.response.body", "body": _HEALTHZ_BODY}


@router.get("/readyz", summary="The database answers", responses=error_responses(503))
async def readyz(runtime: RuntimeDep) -> JsonResponse:
    try:
        async with read_connection(runtime.engine) as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return JsonResponse(
            error_body("SERVICE_UNAVAILABLE", "The database does not answer.", None),
            status_code=503,
        )
    return JsonResponse({"status": "ok", "database": "ok"})
