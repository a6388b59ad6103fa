"""What tenants and keys look like to the CLI and the HTTP layer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

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
