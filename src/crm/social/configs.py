"""A tenant's identity providers per mode: validated, the client secret encrypted, shown masked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.messaging.providers.base import mask_secret
from crm.messaging.providers.netguard import resolve_public
from crm.security.crypto import SecretBox
from crm.social import apple
from crm.social.errors import (
    IdentityProviderInvalid,
    IdentityProviderNotConfigured,
    IdentityProviderNotForApplication,
    IdentityProviderNotFound,
    IdentityProviderTypeUnknown,
)
from crm.social.models import IdentityProvider
from crm.tenants.models import Application

# The SecretBox purposes: a client secret's or a key's ciphertext opens for nothing else.
SECRET_PURPOSE = "identity-provider-client-secret"
KEY_PURPOSE = "identity-provider-private-key"
# type -> (the sign-in `provider` value, the real issuer; None: must be given)
TYPES: dict[str, tuple[str, str | None]] = {
    "google": ("GOOGLE", "https://accounts.google.com"),
    "apple": ("APPLE", "https://appleid.apple.com"),
    "facebook": ("FACEBOOK", "https://www.facebook.com"),
    "oidc": ("OIDC_OAUTH", None),
}
BY_SIGN_IN_PROVIDER = {provider: kind for kind, (provider, _) in TYPES.items()}
# Google signs some ID tokens with the issuer without its scheme (its documentation says both).
ISSUER_ALIASES = {"https://accounts.google.com": ("accounts.google.com",)}
MAX_AUDIENCES = 20
MAX_APPLICATIONS = 50
MAX_VALUE_LENGTH = 300


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """What sign-in needs, the client secret in the clear (never shown)."""

    type: str
    issuer: str
    client_id: str
    client_secret: str | None
    audiences: tuple[str, ...]
    applications: tuple[str, ...]
    # Apple: the key that signs a client secret for each code exchange (then used instead of
    # client_secret).
    team_id: str | None = None
    key_id: str | None = None
    private_key: str | None = None

    def secret_for_exchange(self, now: float) -> str | None:
        """The client secret to send to the token endpoint: signed now, or the stored one."""
        if self.team_id and self.key_id and self.private_key:
            return apple.client_secret(
                team_id=self.team_id,
                key_id=self.key_id,
                client_id=self.client_id,
                audience=self.issuer,
                private_key=self.private_key,
                now=now,
            )
        return self.client_secret

    @property
    def accepted_audiences(self) -> tuple[str, ...]:
        return (self.client_id, *self.audiences)

    @property
    def accepted_issuers(self) -> tuple[str, ...]:
        return (self.issuer, *ISSUER_ALIASES.get(self.issuer, ()))


@dataclass(frozen=True, slots=True)
class ProviderView:
    """What GET shows: the client secret masked."""

    type: str
    provider: str
    issuer: str
    client_id: str
    client_secret: str | None
    audiences: list[str]
    applications: list[str]
    updated_at: datetime
    team_id: str | None = None
    key_id: str | None = None
    private_key: str | None = None


def normalize_type(value: str) -> str:
    kind = value.strip().lower()
    if kind not in TYPES:
        raise IdentityProviderTypeUnknown()
    return kind


def _box(secret: str, purpose: str = SECRET_PURPOSE) -> SecretBox:
    return SecretBox(secret, purpose)


def _invalid(field: str, message: str) -> IdentityProviderInvalid:
    return IdentityProviderInvalid(details=[{"field": field, "message": message}])


def normalize_issuer(value: str, *, production: bool) -> str:
    """An issuer is an https URL (http outside production, for a provider on this machine) with
    no query, fragment or credentials (OpenID Connect Discovery section 2)."""
    text = value.strip().rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise _invalid("issuer", "is not a URL") from None
    schemes = {"https"} if production else {"https", "http"}
    if (
        parts.scheme not in schemes
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or len(text) > 500
    ):
        wanted = "https" if production else "http(s)"
        raise _invalid("issuer", f"must be an {wanted} URL without query, fragment or user")
    return text


def _strings(value: Any, field: str, limit: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > limit:
        raise _invalid(field, f"must be a list of at most {limit} strings")
    found: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item) > MAX_VALUE_LENGTH:
            raise _invalid(field, f"each entry must be a string of 1 to {MAX_VALUE_LENGTH}")
        if item.strip() not in found:
            found.append(item.strip())
    return found


def _view(row: IdentityProvider, secret: str | None, key: str | None) -> ProviderView:
    return ProviderView(
        type=row.type,
        provider=TYPES[row.type][0],
        issuer=row.issuer,
        client_id=row.client_id,
        client_secret=None if secret is None else mask_secret(secret),
        audiences=list(row.audiences or []),
        applications=list(row.applications or []),
        updated_at=row.updated_at,
        team_id=row.team_id,
        key_id=row.key_id,
        private_key=None if key is None else (apple.key_mask(key) if key else "****"),
    )


def _open(secret: str, encrypted: str | None, purpose: str) -> str | None:
    if encrypted is None:
        return None
    try:
        return _box(secret, purpose).decrypt(encrypted).decode()
    except Exception:
        # Stored under another server secret: named as set, never shown or used.
        return ""


def _open_secret(secret: str, row: IdentityProvider) -> str | None:
    return _open(secret, row.client_secret_encrypted, SECRET_PURPOSE)


def _open_key(secret: str, row: IdentityProvider) -> str | None:
    return _open(secret, row.private_key_encrypted, KEY_PURPOSE)


def _apple_id(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not apple.ID_PATTERN.fullmatch(value.strip()):
        raise _invalid(field, "must be Apple's 10-character id (capital letters and digits)")
    return value.strip()


def _signing_key(
    kind: str, body: dict[str, Any], stored: str | None, issuer_moved: bool
) -> tuple[str | None, str | None, str | None]:
    """(team id, key id, private key) to store. The key follows the client secret's rules: left
    out, or sent back masked, the stored one stays unless the issuer moves. Leaving out both
    ids drops the key (the static client secret, if any, is used again)."""
    sent = body.get("private_key")
    if kind != "apple":
        if body.get("team_id") or body.get("key_id") or sent:
            raise _invalid("private_key", "only an apple provider signs its client secrets")
        return None, None, None
    team_id = _apple_id(body.get("team_id"), "team_id")
    key_id = _apple_id(body.get("key_id"), "key_id")
    if sent is not None and not isinstance(sent, str):
        raise _invalid("private_key", "must be the text of the .p8 file")
    if sent is None or (stored and sent == apple.key_mask(stored)):
        if issuer_moved and stored and (team_id or key_id):
            raise _invalid("private_key", "send the private key again: the issuer changed")
        key = stored or None
    else:
        try:
            apple.load_key(sent)
        except ValueError as exc:
            raise _invalid("private_key", str(exc)) from None
        key = sent.strip() + "\n"
    if team_id is None and key_id is None and (sent is None or key == stored):
        return None, None, None
    if team_id is None or key_id is None or key is None:
        missing = "team_id" if team_id is None else "key_id" if key_id is None else "private_key"
        raise _invalid(missing, "team_id, key_id and private_key are set together")
    return team_id, key_id, key


async def _row(session: AsyncSession, tenant_id: str, mode: str, kind: str) -> IdentityProvider:
    row = await session.get(IdentityProvider, (tenant_id, mode, kind))
    if row is None:
        raise IdentityProviderNotFound()
    return row


async def get_provider(
    session: AsyncSession, secret: str, tenant_id: str, mode: str, kind: str
) -> ProviderView:
    row = await _row(session, tenant_id, mode, normalize_type(kind))
    return _view(row, _open_secret(secret, row), _open_key(secret, row))


async def list_providers(
    session: AsyncSession, secret: str, tenant_id: str, mode: str
) -> list[ProviderView]:
    rows = await session.scalars(
        select(IdentityProvider)
        .where(IdentityProvider.tenant_id == tenant_id, IdentityProvider.mode == mode)
        .order_by(IdentityProvider.type)
    )
    return [_view(row, _open_secret(secret, row), _open_key(secret, row)) for row in rows]


async def delete_provider(session: AsyncSession, tenant_id: str, mode: str, kind: str) -> None:
    row = await _row(session, tenant_id, mode, normalize_type(kind))
    await session.delete(row)
    await session.flush()


async def put_provider(
    session: AsyncSession,
    clock: Clock,
    *,
    secret: str,
    production: bool,
    private_addresses_allowed: bool,
    tenant_id: str,
    mode: str,
    kind: str,
    body: dict[str, Any],
) -> ProviderView:
    """Validate and store; a client secret left out, or sent back masked as GET shows it, keeps
    its stored value unless the issuer changes (then it must be sent again in full, or a key
    holder could send the stored secret to a token endpoint of their own)."""
    kind = normalize_type(kind)
    default_issuer = TYPES[kind][1]
    raw_issuer = body.get("issuer") or default_issuer
    if not isinstance(raw_issuer, str):
        raise _invalid("issuer", "is required for an oidc provider")
    issuer = normalize_issuer(raw_issuer, production=production)
    client_id = body.get("client_id")
    if not isinstance(client_id, str) or not client_id.strip() or len(client_id) > MAX_VALUE_LENGTH:
        raise _invalid("client_id", f"is required: a string of 1 to {MAX_VALUE_LENGTH}")
    audiences = _strings(body.get("audiences"), "audiences", MAX_AUDIENCES)
    applications = _strings(body.get("applications"), "applications", MAX_APPLICATIONS)
    if applications:
        known = set(
            await session.scalars(
                select(Application.id).where(
                    Application.tenant_id == tenant_id, Application.id.in_(applications)
                )
            )
        )
        unknown = [a for a in applications if a not in known]
        if unknown:
            raise _invalid("applications", f"not applications of this tenant: {unknown[0]}")
    sent_secret = body.get("client_secret")
    if sent_secret is not None and (
        not isinstance(sent_secret, str) or len(sent_secret) > 4096 or not sent_secret
    ):
        raise _invalid("client_secret", "must be a string of 1 to 4096 characters")
    if not private_addresses_allowed:
        host = urlsplit(issuer).hostname or ""
        await resolve_public(host)
    row = await session.get(IdentityProvider, (tenant_id, mode, kind))
    stored = _open_secret(secret, row) if row is not None else None
    issuer_moved = row is not None and row.issuer != issuer
    team_id, key_id, private_key = _signing_key(
        kind, body, _open_key(secret, row) if row is not None else None, issuer_moved
    )
    if sent_secret is None or (stored and sent_secret == mask_secret(stored)):
        if issuer_moved and stored:
            raise _invalid("client_secret", "send the client secret again: the issuer changed")
        client_secret = stored or None
    else:
        client_secret = sent_secret
    encrypted = None if client_secret is None else _box(secret).encrypt(client_secret)
    now = clock.now()
    if row is None:
        row = IdentityProvider(tenant_id=tenant_id, mode=mode, type=kind)
        session.add(row)
    row.issuer = issuer
    row.client_id = client_id.strip()
    row.client_secret_encrypted = encrypted
    row.team_id, row.key_id = team_id, key_id
    row.private_key_encrypted = (
        None if private_key is None else _box(secret, KEY_PURPOSE).encrypt(private_key)
    )
    row.audiences = audiences
    row.applications = applications
    row.updated_at = now
    await session.flush()
    return _view(row, client_secret, private_key)


async def for_sign_in(
    session: AsyncSession,
    secret: str,
    *,
    tenant_id: str,
    mode: str,
    provider: str,
    application_id: str | None,
) -> ProviderConfig:
    """The provider a sign-in names (GOOGLE, ..., OIDC_OAUTH, or a type), for the caller's app."""
    kind = BY_SIGN_IN_PROVIDER.get(provider.upper(), provider.lower())
    if kind not in TYPES:
        raise IdentityProviderTypeUnknown()
    row = await session.get(IdentityProvider, (tenant_id, mode, kind))
    if row is None:
        raise IdentityProviderNotConfigured()
    allowed = list(row.applications or [])
    if allowed and application_id not in allowed:
        raise IdentityProviderNotForApplication()
    return ProviderConfig(
        type=kind,
        issuer=row.issuer,
        client_id=row.client_id,
        client_secret=_open_secret(secret, row) or None,
        audiences=tuple(row.audiences or ()),
        applications=tuple(allowed),
        team_id=row.team_id,
        key_id=row.key_id,
        private_key=_open_key(secret, row) or None,
    )
