"""Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), the codes
authenticator apps show."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote

STEP_SECONDS = 30
DIGITS = 6
# One step either side: a phone's clock a little off, or a code typed as it changed.
WINDOW = 1


def new_secret() -> str:
    """160 random bits in base32 (RFC 4226's recommended length), as apps expect them."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")


def _key(secret: str) -> bytes | None:
    clean = secret.strip().replace(" ", "").upper()
    try:
        return base64.b32decode(clean + "=" * (-len(clean) % 8))
    except (ValueError, TypeError):
        return None


def code_at(secret: str, timestamp: float) -> str:
    key = _key(secret)
    if key is None:
        raise ValueError("not a base32 secret")
    counter = int(timestamp // STEP_SECONDS)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def matching_step(secret: str, code: str, timestamp: float) -> int | None:
    """The time step whose code `code` is (this one or one either side), or None."""
    typed = (code or "").strip().replace(" ", "")
    if len(typed) != DIGITS or not typed.isdigit() or _key(secret) is None:
        return None
    found = None
    now_step = int(timestamp // STEP_SECONDS)
    for step in range(now_step - WINDOW, now_step + WINDOW + 1):
        # Every candidate is compared, in constant time, whatever matched first.
        if hmac.compare_digest(code_at(secret, step * STEP_SECONDS), typed):
            found = step
    return found


def verify(secret: str, code: str, timestamp: float) -> bool:
    """Whether `code` is the secret's code for this step or one either side."""
    return matching_step(secret, code, timestamp) is not None


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// URI authenticator apps import (as a QR code or typed in)."""
    label = quote(f"{issuer}:{account}", safe="")
    return f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer, safe='')}"
