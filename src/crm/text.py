"""The wire's shared rules for plain values: cleaning free text and reading "true"/"false"."""

from __future__ import annotations

import unicodedata
from typing import Any

# Characters that make two strings look the same on screen while differing (zero-width,
# bidi overrides, controls): refused in every free-text field rather than stored.
_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def clean_text(value: str) -> str | None:
    """NFC and trimmed; None when empty; ValueError on an invisible or control character."""
    text = unicodedata.normalize("NFC", value).strip()
    for ch in text:
        if unicodedata.category(ch) in _FORBIDDEN:
            raise ValueError(f"contains a forbidden character U+{ord(ch):04X}")
    return text or None


def optional_text(value: Any, *, max_length: int) -> str | None:
    """Free text someone else supplied (a provider's claims, a browser's form) as clean text, or
    None when it is not a string, is too long, or has an invisible or control character: such a
    value is left out, never half-cleaned."""
    if not isinstance(value, str) or len(value) > max_length:
        return None
    try:
        return clean_text(value)
    except ValueError:
        return None


def parse_bool(value: Any) -> Any:
    """A wire boolean: true, false, or their strings in any case; anything else is refused."""
    # The seed sends "true"/"false" strings; other truthy spellings ("yes", 1) are refused so
    # that a typo cannot flip a consent flag.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise ValueError("must be true or false")
