"""ID token verification (OpenID Connect Core 3.1.3.7, RFC 8725): each failure its own 401."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Final

import jwt

from crm.social.errors import (
    OidcAudienceMismatch,
    OidcIssuerMismatch,
    OidcNonceMismatch,
    OidcSignatureInvalid,
    OidcTokenExpired,
    OidcTokenInvalid,
)
from crm.social.jwks import KeyCache, ProviderHttp

# Asymmetric algorithms only: `none` proves nothing, and HS* would let anyone who knows the
# client secret (every app binary holding it) mint tokens (RFC 8725 section 3.1).
ALGORITHMS: Final = frozenset({"RS256", "ES256", "EdDSA"})
# The key types each algorithm may use, so a key of one kind is never read as another.
_KEY_TYPES: Final = {"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
LEEWAY_SECONDS: Final = 60
MAX_TOKEN_LENGTH: Final = 16 * 1024
MAX_SUB_LENGTH: Final = 255


def _nonce_matches(expected: str, found: Any) -> bool:
    if not isinstance(found, str):
        return False
    # Apple's and Firebase's clients send SHA-256(nonce) to the provider and the nonce itself here.
    hashed = hashlib.sha256(expected.encode()).hexdigest()
    return hmac.compare_digest(found, expected) or hmac.compare_digest(found, hashed)


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return aud
    raise OidcTokenInvalid("The ID token has no audience (aud).")


async def verify_id_token(
    token: str,
    *,
    http: ProviderHttp,
    cache: KeyCache,
    issuers: tuple[str, ...],
    audiences: tuple[str, ...],
    now: float,
    nonce: str | None,
) -> dict[str, Any]:
    """The token's claims once signature, iss, aud (and azp), exp, iat, nbf and nonce hold.

    `issuers[0]` is the configured issuer, whose keys are used; the rest are spellings the
    provider also puts in `iss`.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise OidcTokenInvalid()
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise OidcTokenInvalid() from None
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise OidcTokenInvalid("The ID token's algorithm is not RS256, ES256 or EdDSA.")
    if header.get("crit") is not None:
        raise OidcTokenInvalid("The ID token names critical header parameters.")
    # The issuer is compared before any key is fetched: a token of another issuer never makes
    # this server ask the configured one for keys.
    if unverified.get("iss") not in issuers:
        raise OidcIssuerMismatch()
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or len(kid) > 200):
        raise OidcTokenInvalid()
    jwk = await cache.key(http, issuers[0], kid)
    if jwk is None:
        raise OidcSignatureInvalid("The ID token names a key the provider does not publish.")
    if jwk.get("kty") != _KEY_TYPES[algorithm] or jwk.get("alg", algorithm) != algorithm:
        raise OidcSignatureInvalid("The ID token's algorithm does not fit the provider's key.")
    try:
        key = jwt.PyJWK(jwk, algorithm=algorithm).key
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[algorithm],
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise OidcSignatureInvalid() from None
    except jwt.PyJWTError:
        raise OidcTokenInvalid() from None
    if claims.get("iss") not in issuers:
        raise OidcIssuerMismatch()
    audience = _audiences(claims)
    if not set(audience) & set(audiences):
        raise OidcAudienceMismatch()
    # Core 3.1.3.7: with several audiences, the authorized party must be ours too.
    azp = claims.get("azp")
    if (len(audience) > 1 or azp is not None) and azp not in audiences:
        raise OidcAudienceMismatch("The ID token was issued to another authorized party (azp).")
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise OidcTokenInvalid("The ID token has no expiry (exp).")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise OidcTokenInvalid("The ID token has no issue time (iat).")
    if now > exp + LEEWAY_SECONDS:
        raise OidcTokenExpired()
    if iat > now + LEEWAY_SECONDS or (isinstance(nbf, int | float) and nbf > now + LEEWAY_SECONDS):
        raise OidcTokenExpired("The ID token is not valid yet (issued in the future).")
    if nonce is not None and not _nonce_matches(nonce, claims.get("nonce")):
        raise OidcNonceMismatch()
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUB_LENGTH:
        raise OidcTokenInvalid("The ID token has no subject (sub).")
    return claims
