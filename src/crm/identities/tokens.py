"""Access tokens (Ed25519 JWTs) and opaque refresh tokens: minting, hashing and verification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from crm.clock import Clock
from crm.errors import InvalidToken, TokenExpired
from crm.identities.signing import key_ring
from crm.ids import uuid7
from crm.security import jwt as jwt_tools
from crm.security.secrets import new_token, sha256_hex

# 256 random bits: well above the 128-bit floor for bearer secrets guessed online.
REFRESH_TOKEN_BYTES = 32
# Longer than anything new_token produces; refusing early bounds hashing work on garbage.
MAX_REFRESH_TOKEN_LENGTH = 512


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified claims of an access token that the rest of the code acts on."""

    tenant_id: str
    contact_id: str
    session_id: str
    application_id: str | None
    mode: str
    expires_at: int


def new_refresh_token() -> str:
    return new_token(REFRESH_TOKEN_BYTES)


def refresh_hash(token: str) -> str:
    return sha256_hex(token)


async def issue_access_token(
    engine: AsyncEngine,
    secret: str,
    clock: Clock,
    *,
    issuer: str,
    ttl_seconds: int,
    tenant_id: str,
    contact_id: str,
    session_id: str,
    application_id: str | None,
    mode: str,
) -> tuple[str, int]:
    """Return (JWT, expiry in epoch seconds)."""
    signer = await key_ring(engine, secret).signing_key(clock, ttl_seconds)
    issued = int(clock.timestamp())
    expires = issued + ttl_seconds
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": tenant_id,
        "sub": contact_id,
        "sid": session_id,
        "mode": mode,
        "iat": issued,
        "exp": expires,
        "jti": uuid7(),
    }
    if application_id is not None:
        claims["app"] = application_id
    token = jwt_tools.sign_access_token(signer.private_pem, signer.kid, claims)
    return token, expires


async def verify_access_token(
    engine: AsyncEngine,
    secret: str,
    clock: Clock,
    token: str,
    *,
    issuer: str,
    ttl_seconds: int,
    audience: str | None,
    cache_size: int = 0,
) -> AccessClaims:
    """Verify signature, typ, iss, aud (when known), exp; the session is checked by the caller."""
    ring = key_ring(engine, secret)
    cache_key = (token, issuer, audience)
    cached: AccessClaims | None = ring.verified.get(cache_key)
    if cached is not None:
        # The exact bytes verified before: only the expiry can have changed since. Whether the
        # session is still live is checked by the caller on every request regardless.
        if clock.timestamp() < cached.expires_at + jwt_tools.DEFAULT_LEEWAY_SECONDS:
            return cached
        ring.verified.pop(cache_key, None)
    keys = await ring.public_keys(clock, ttl_seconds)
    try:
        claims = jwt_tools.verify_access_token(
            token, keys, issuer=issuer, audience=audience, now=clock.timestamp()
        )
    except TokenExpired:
        raise
    except InvalidToken:
        # Perhaps signed by a key another process created or rotated in since we last looked:
        # re-read the keys (throttled inside the ring) and try once more.
        kid = jwt_tools.decode_unverified_header(token).get("kid")
        if not isinstance(kid, str) or kid in keys:
            raise
        keys = await ring.public_keys(clock, ttl_seconds, kid)
        claims = jwt_tools.verify_access_token(
            token, keys, issuer=issuer, audience=audience, now=clock.timestamp()
        )
    mode = claims.get("mode")
    app = claims.get("app")
    if mode not in ("test", "live") or (app is not None and not isinstance(app, str)):
        raise InvalidToken()
    verified = AccessClaims(
        tenant_id=str(claims["aud"]),
        contact_id=str(claims["sub"]),
        session_id=str(claims["sid"]),
        application_id=app,
        mode=str(mode),
        expires_at=int(claims["exp"]),
    )
    ring.remember(cache_key, verified, limit=cache_size)
    return verified
