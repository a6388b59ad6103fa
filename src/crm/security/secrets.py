"""Random tokens, their SHA-256 digests, and timing-safe comparison for opaque secrets."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# 128 bits is the floor RFC 6749 section 10.10 and OWASP set for bearer secrets that can be
# guessed online; refresh tokens, API keys and reset tokens all come from here.
MIN_TOKEN_BYTES = 16


def new_token(nbytes: int = 32) -> str:
    """Return a URL-safe random token of `nbytes` random bytes (default 256 bits)."""
    if nbytes < MIN_TOKEN_BYTES:
        raise ValueError(f"a token needs at least {MIN_TOKEN_BYTES} random bytes")
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    """Return the hex SHA-256 of the UTF-8 encoding of `value`.

    Unsalted SHA-256 is enough for high-entropy random tokens (refresh tokens, API keys): there
    is no dictionary to precompute against, and a fast hash lets a lookup by digest be indexed.
    It is NOT fit for passwords; use `crm.security.passwords` for those.
    """
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets in time independent of where they first differ."""
    # Encode str to bytes: hmac.compare_digest refuses non-ASCII str, and an attacker controls
    # one side, so it must never raise on odd input.
    a_bytes = a.encode("utf-8") if isinstance(a, str) else a
    b_bytes = b.encode("utf-8") if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)
