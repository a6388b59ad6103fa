"""Access tokens: Ed25519 signing keys, the JWKS, signing, and strict verification (RFC 8725)."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
import time
from collections.abc import Mapping
from typing import Any, Final

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from crm.errors import InvalidToken, TokenExpired

ALGORITHM: Final = "EdDSA"
TOKEN_TYPE: Final = "at+jwt"
# RFC 9068 section 4 also allows the full media type; "typ" is compared case-insensitively
# (RFC 7515 section 4.1.9).
_ACCEPTED_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})
REQUIRED_CLAIMS: Final = ("iss", "aud", "exp", "iat", "sub", "sid", "jti")
DEFAULT_LEEWAY_SECONDS: Final = 30.0
# Our tokens are a few hundred bytes; refusing large input before base64/JSON work bounds the
# cost of garbage sent in an Authorization header.
MAX_TOKEN_LENGTH: Final = 8192
_PUBLIC_JWK_MEMBERS: Final = ("kty", "crv", "x", "kid", "alg", "use")

PublicKey = Mapping[str, Any] | Ed25519PublicKey


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _thumbprint(x: str) -> str:
    # RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order with no
    # whitespace. A kid derived from the key itself cannot be reused for a different key.
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def generate_signing_key() -> tuple[str, bytes, dict[str, Any]]:
    """Return (kid, private key as unencrypted PKCS#8 PEM, public JWK) for a new Ed25519 key.

    Ed25519 rather than ES256: deterministic signatures (no nonce to get wrong), one fixed curve
    and no parameter choices for an attacker to play with. The caller encrypts the PEM at rest
    (crm.security.crypto.SecretBox) or writes it to a 0600 file.
    """
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    x = _b64url(
        private_key.public_key().public_bytes(
            encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
        )
    )
    kid = _thumbprint(x)
    public_jwk = {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": kid,
        "alg": ALGORITHM,
        "use": "sig",
    }
    return kid, private_pem, public_jwk


@functools.lru_cache(maxsize=64)
def _load_private_key(private_pem: bytes) -> Ed25519PrivateKey:
    # Parsing PEM on every token issue is wasted work; keys rotate rarely, so a small cache keyed
    # on the PEM bytes holds the few live ones.
    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key must be an Ed25519 private key")
    return key


def sign_access_token(private_pem: bytes, kid: str, claims: Mapping[str, Any]) -> str:
    """Return a compact JWT with header {"alg": "EdDSA", "typ": "at+jwt", "kid": kid}.

    `claims` must carry every claim verification requires, so this never mints a token that
    verify_access_token would then refuse.
    """
    missing = [name for name in REQUIRED_CLAIMS if name not in claims]
    if missing:
        raise ValueError(f"access token claims missing: {', '.join(missing)}")
    return jwt.encode(
        dict(claims),
        _load_private_key(private_pem),
        algorithm=ALGORITHM,
        headers={"typ": TOKEN_TYPE, "kid": kid},
    )


# base64url without padding, the only encoding of a compact JWS segment (RFC 7515 section 2).
_SEGMENT: Final = re.compile(r"[A-Za-z0-9_-]*")
_SIGNATURE_LENGTH: Final = 64  # Ed25519 (RFC 8032)


def _segment(text: str) -> bytes:
    """One segment of a compact JWS, decoded strictly: only the URL-safe alphabet, no padding,
    and no length that no byte string encodes to."""
    if _SEGMENT.fullmatch(text) is None or len(text) % 4 == 1:
        raise InvalidToken()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:  # not UTF-8, or not JSON
        raise InvalidToken() from exc
    if not isinstance(value, dict):
        raise InvalidToken()
    return value


def decode_unverified_header(token: str) -> dict[str, Any]:
    """Return the JOSE header of `token` WITHOUT verifying it; raise InvalidToken if malformed."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise InvalidToken()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken() from exc
    return dict(header)


def peek_claims(token: str) -> dict[str, Any]:
    """Return the claims of `token` WITHOUT verifying the signature or any claim.

    Only for routing: it tells which tenant's keys to verify with (the `aud` claim) when a
    request has a bearer token and no api_key. Nothing read here may be trusted or acted on
    until verify_access_token has accepted the same token with that tenant's keys.
    """
    decode_unverified_header(token)
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise InvalidToken() from exc
    if not isinstance(claims, dict):
        raise InvalidToken()
    return claims


def _public_key(key: PublicKey) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    # Accept only an Ed25519 OKP JWK. A JWK of another type under a known kid is refused rather
    # than used, so no key material can be repurposed for another algorithm.
    if key.get("kty") != "OKP" or key.get("crv") != "Ed25519" or not isinstance(key.get("x"), str):
        raise InvalidToken()
    if key.get("alg", ALGORITHM) != ALGORITHM:
        raise InvalidToken()
    try:
        raw = _b64url_decode(key["x"])
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken() from exc


def _require_str(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidToken(f"The access token lacks a valid {name!r} claim.")
    return value


def _require_time(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    # bool is an int subclass; "exp": true is not a time.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"The access token lacks a valid {name!r} claim.")
    return float(value)


def verify_access_token(
    token: str,
    public_keys: Mapping[str, PublicKey],
    *,
    issuer: str,
    audience: str | None,
    now: float | None = None,
    leeway: float = DEFAULT_LEEWAY_SECONDS,
) -> dict[str, Any]:
    """Verify `token` and return its claims, or raise InvalidToken / TokenExpired.

    RFC 8725 checks, in order: the algorithm is pinned to EdDSA before any key is chosen (so
    "none", and HS256 "signed" with our public key, are refused outright); `typ` must be at+jwt
    (so an ID token or other JWT from elsewhere cannot pass as an access token); the key comes
    only from `public_keys` by `kid`, never from the token (jwk, jku, x5u and x5c headers are
    ignored); then the signature; then iss, aud, exp, iat (and nbf if present) against `now`
    with `leeway` seconds of clock skew, and sub, sid and jti must be present.

    `audience` is the tenant the caller expects. None skips only the comparison (the claim must
    still be present), for a caller that chose `public_keys` by the token's own audience: then the
    keys themselves bind the token to that tenant.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise InvalidToken()
    header_part, payload_part, signature_part = token.split(".")
    header = _json_object(_segment(header_part))
    if header.get("alg") != ALGORITHM:
        raise InvalidToken()
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYPES:
        raise InvalidToken()
    if "crit" in header:
        # We implement no JWS extensions; RFC 7515 section 4.1.11 says to reject what we don't know.
        raise InvalidToken()
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in public_keys:
        raise InvalidToken()
    key = _public_key(public_keys[kid])
    # The compact JWS checked directly (RFC 7515 section 5.2): the signature over the two
    # encoded segments as sent, with the one key and algorithm chosen above. A general JWT
    # library's decode would parse the header again and look up the algorithm the token
    # names: a quarter of a signed-in request's CPU, for checks already made.
    # Every segment is checked to be base64url (so ASCII) before anything is verified or read.
    payload = _segment(payload_part)
    signature = _segment(signature_part)
    if len(signature) != _SIGNATURE_LENGTH:
        raise InvalidToken()
    try:
        key.verify(signature, f"{header_part}.{payload_part}".encode("ascii"))
    except InvalidSignature as exc:
        raise InvalidToken() from exc
    claims = _json_object(payload)

    if _require_str(claims, "iss") != issuer:
        raise InvalidToken()
    token_audience = _require_str(claims, "aud")
    if audience is not None and token_audience != audience:
        raise InvalidToken()
    for name in ("sub", "sid", "jti"):
        _require_str(claims, name)
    expires_at = _require_time(claims, "exp")
    issued_at = _require_time(claims, "iat")
    current = time.time() if now is None else now
    if issued_at > current + leeway:
        raise InvalidToken()
    if "nbf" in claims and _require_time(claims, "nbf") > current + leeway:
        raise InvalidToken()
    if current >= expires_at + leeway:
        raise TokenExpired()
    return claims


def jwks(public_jwks: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Return the JWK Set document for /.well-known/jwks.json.

    Only public members are copied out, so a private JWK passed here by mistake (with "d")
    publishes its public half and never the private key.
    """
    return {
        "keys": [
            {name: jwk[name] for name in _PUBLIC_JWK_MEMBERS if name in jwk} for jwk in public_jwks
        ]
    }
