"""What tenants and keys look like to the CLI and the HTTP layer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

KeyKind = Literal["public", "secret"]
KeyMode = Literal["test", "live"]
KEY_KINDS: tuple[KeyKind, ...] = ("public", "secret")
KEY_MODES: tuple[KeyMode, ...] = ("test", "live")


@dataclass(frozen=True, slots=True)
class CallerKey:
    """Who is calling, as resolved from an api_key (or from an access token's claims)."""

    key_id: str | None
    tenant_id: str
    tenant_name: str
    application_id: str | None
    kind: KeyKind
    mode: KeyMode


@dataclass(frozen=True, slots=True)
class CreatedTenant:
    id: str
    name: str
    application_id: str
    keys: dict[str, str]  # public_test, public_live, secret_test, secret_live -> plaintext


@dataclass(frozen=True, slots=True)
class CreatedKey:
    id: str
    kind: KeyKind
    mode: KeyMode
    key: str  # shown once


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    tenant_id: str
    application_id: str | None
    kind: str
    mode: str
    display_prefix: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class TenantInfo:
    id: str
    name: str
    created_at: datetime
    applications: int
    active_keys: int


# Each per-tenant setting with the range it may take. sms_daily_limit=0 stops every SMS of the
# tenant (email codes still go out).
TENANT_SETTING_RANGES: Final[dict[str, tuple[int, int]]] = {"sms_daily_limit": (0, 10_000_000)}


@dataclass(frozen=True, slots=True)
class TenantSettings:
    """A tenant's overrides of deployment defaults; None means the deployment default applies."""

    sms_daily_limit: int | None = None


def tenant_setting_value(name: str, value: Any) -> int:
    """Check one setting as an operator typed it; raise ValueError saying what is wrong."""
    if name not in TENANT_SETTING_RANGES:
        raise ValueError(f"unknown setting {name!r}; known: {', '.join(TENANT_SETTING_RANGES)}")
    low, high = TENANT_SETTING_RANGES[name]
    # bool is an int in Python; "true" is not a number of messages.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} needs a whole number from {low} to {high}")
    return value


def tenant_settings_from(raw: Mapping[str, Any] | None) -> TenantSettings:
    """Typed overrides from the stored JSON; a value out of range is ignored, not obeyed."""
    raw = raw or {}
    values: dict[str, int | None] = {}
    for name in TENANT_SETTING_RANGES:
        try:
            values[name] = tenant_setting_value(name, raw[name]) if name in raw else None
        except ValueError:
            values[name] = None
    return TenantSettings(**values)
