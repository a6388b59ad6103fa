"""Self-Service register and authenticate with an identity provider: by ID token (`provider`
GOOGLE, APPLE, FACEBOOK or OIDC_OAUTH and `token`), or by a redirect sign-in's one-time `code`
and `state`. The register and authenticate routes hand such bodies here."""

from __future__ import annotations

from typing import Any

from crm.errors import InvalidRequest
from crm.identities import service
from crm.identities.policy import ClientOperation
from crm.identities.schemas import AuthenticateIn, RegisterIn
from crm.runtime import Runtime
from crm.social import configs, redirect, signin
from crm.tenants.schemas import CallerKey

PROVIDERS = frozenset(configs.BY_SIGN_IN_PROVIDER)


def is_provider_sign_in(provider: str | None) -> bool:
    """Whether a register or authenticate body names an OpenID Connect provider."""
    return (provider or "").strip().upper() in PROVIDERS


def _token_required() -> InvalidRequest:
    return InvalidRequest(
        "Give the provider's ID token as token (or a redirect sign-in's code and state).",
        details=[{"field": "token", "message": "Field required"}],
    )


async def verify(
    db: Any, runtime: Runtime, caller: CallerKey, provider: str, token: str, nonce: str | None
) -> signin.Verified:
    return await signin.verify_token(
        db,
        runtime.clock,
        secret=runtime.secret,
        private_allowed=runtime.settings.private_provider_urls_allowed,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        application_id=caller.application_id,
        provider=provider,
        token=token,
        nonce=nonce,
    )


async def _grant(
    db: Any, runtime: Runtime, caller: CallerKey, contact: Any, meta: service.RequestMeta
) -> service.Grant:
    return await service._grant(
        db,
        runtime,
        contact=contact,
        tenant_name=caller.tenant_name,
        application_id=caller.application_id,
        meta=meta,
    )


async def register(
    db: Any, runtime: Runtime, caller: CallerKey, body: RegisterIn, meta: service.RequestMeta
) -> service.Grant:
    """Register with an ID token; a provider account already registered signs its contact in."""
    await service._signer_ready(runtime)
    await service._client_limit(db, runtime, caller, meta, ClientOperation.REGISTER)
    if not body.identity.token:
        raise _token_required()
    verified = await verify(
        db, runtime, caller, body.identity.provider, body.identity.token, body.identity.nonce
    )
    fields = body.contact_fields().only(
        ("title", "first_name", "middle_name", "last_name", "language_code")
    )
    contact = await signin.contact_for(
        db,
        runtime.clock,
        verified,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        actor=service._actor(caller),
        fields=fields,
    )
    return await _grant(db, runtime, caller, contact, meta)


async def authenticate(
    db: Any, runtime: Runtime, caller: CallerKey, body: AuthenticateIn, meta: service.RequestMeta
) -> service.Grant:
    """Sign in with an ID token, or with a redirect sign-in's one-time code and state."""
    await service._signer_ready(runtime)
    await service._client_limit(db, runtime, caller, meta, ClientOperation.SIGN_IN)
    if body.token:
        verified = await verify(db, runtime, caller, body.provider or "", body.token, body.nonce)
        contact = await signin.contact_for(
            db,
            runtime.clock,
            verified,
            tenant_id=caller.tenant_id,
            mode=caller.mode,
            actor=service._actor(caller),
        )
    elif body.code and body.state:
        contact = await redirect.trade(
            db,
            runtime.clock,
            secret=runtime.secret,
            tenant_id=caller.tenant_id,
            mode=caller.mode,
            application_id=caller.application_id,
            code=body.code,
            state=body.state,
        )
    else:
        raise _token_required()
    return await _grant(db, runtime, caller, contact, meta)
