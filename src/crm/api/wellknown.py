"""Public, unauthenticated documents: the JWT verification keys."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from crm.api.deps import RuntimeDep
from crm.api.responses import JsonResponse
from crm.identities.signing import key_ring
from crm.security import jwt as jwt_tools

router = APIRouter(tags=["Operations"])


@router.get("/.well-known/jwks.json", summary="Public keys that verify access tokens")
async def jwks(runtime: RuntimeDep) -> Response:
    """RFC 7517 JWK Set: the current signing key and retired ones whose tokens may still be live."""
    ring = key_ring(runtime.engine, runtime.secret)
    ttl = runtime.settings.access_token_ttl_seconds
    # Creating the first key here too means verifiers can fetch keys before any sign-in.
    await ring.signing_key(runtime.clock, ttl)
    await ring.public_keys(runtime.clock, ttl)
    return JsonResponse(
        jwt_tools.jwks(ring.jwks),
        headers={"Cache-Control": "public, max-age=300"},
    )
