"""Identifier generation: time-ordered UUIDs (v7) and short human-readable codes."""

from __future__ import annotations

import secrets
import time
import uuid

# Crockford base32 without I, L, O, U: codes are read aloud and typed by agents.
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def uuid7() -> str:
    """RFC 9562 UUIDv7: 48-bit millisecond time then 74 random bits, so new rows index in order."""
    ms = time.time_ns() // 1_000_000
    rand = secrets.randbits(74)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def short_code(length: int = 10) -> str:
    """A random code like `K7XQ-2M9PDA` (50 bits by default): unique enough to retry on collision."""
    body = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(length))
    return f"{body[:4]}-{body[4:]}"
