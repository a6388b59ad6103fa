"""Back-Office identity providers: the OpenID Connect providers a tenant's customers sign in with,
per mode (the secret key's). Client secrets and Apple's private keys are stored encrypted and
shown masked."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from crm.api.deps import RuntimeDep, SecretKey, SessionDep
from crm.api.responses import error_responses
from crm.clock import epoch
from crm.social import configs

router = APIRouter(tags=["Identity providers"])

TypePath = Annotated[
    str, Path(max_length=20, description="google, apple, facebook or oidc.", examples=["google"])
]


class IdentityProviderUpdate(BaseModel):
    issuer: str | None = Field(
        None,
        max_length=500,
        description="Defaults to the real issuer for google (https://accounts.google.com), apple "
        "(https://appleid.apple.com) and facebook (https://www.facebook.com); required for oidc. "
        "Its discovery document gives the keys and endpoints. https only in production; a "
        "private, loopback or link-local host is refused where provider URLs are "
        "(CRM_ALLOW_PRIVATE_PROVIDER_URLS).",
    )
    client_id: str = Field(max_length=300, description="The OAuth client id (an ID token's aud).")
    client_secret: str | None = Field(
        None,
        max_length=4096,
        description="Needed for redirect sign-in (for apple, or set team_id, key_id and "
        "private_key instead). Left out, or sent back masked as GET shows it, the stored one "
        "stays, unless the issuer changes.",
    )
    team_id: str | None = Field(
        None,
        max_length=20,
        description="apple only: the Apple Developer team id (10 characters). With key_id and "
        "private_key, crm signs a short-lived client secret (ES256 JWT) for each code exchange "
        "instead of sending client_secret. Leaving out team_id and key_id removes the key.",
        examples=["ABCDE12345"],
    )
    key_id: str | None = Field(
        None,
        max_length=20,
        description="apple only: the id of the Sign in with Apple key (10 characters).",
        examples=["KEY0123456"],
    )
    private_key: str | None = Field(
        None,
        max_length=4096,
        description="apple only: the key's .p8 file (PEM, EC P-256), stored encrypted. Left "
        "out, or sent back masked as GET shows it, the stored one stays, unless the issuer "
        "changes.",
    )
    audiences: list[str] | None = Field(
        None, description="Further client ids whose ID tokens are accepted (iOS, Android apps)."
    )
    applications: list[str] | None = Field(
        None, description="Application ids that may use this provider; empty: every one."
    )


class IdentityProviderRead(BaseModel):
    type: str = Field(examples=["google"])
    provider: str = Field(description="The sign-in `provider` value.", examples=["GOOGLE"])
    issuer: str
    client_id: str
    client_secret: str | None = Field(description="Masked (`****abcd`), or null when unset.")
    audiences: list[str]
    applications: list[str]
    updated_at: int | None = Field(description="Epoch seconds.")
    team_id: str | None = Field(None, description="apple: the team id of the signing key.")
    key_id: str | None = Field(None, description="apple: the signing key's id.")
    private_key: str | None = Field(
        None,
        description="Masked (`****` and the end of the public key's SHA-256 fingerprint), or "
        "null when unset.",
    )


class IdentityProviderList(BaseModel):
    content: list[IdentityProviderRead]


def _read(view: configs.ProviderView) -> IdentityProviderRead:
    return IdentityProviderRead(
        type=view.type,
        provider=view.provider,
        issuer=view.issuer,
        client_id=view.client_id,
        client_secret=view.client_secret,
        audiences=view.audiences,
        applications=view.applications,
        updated_at=epoch(view.updated_at),
        team_id=view.team_id,
        key_id=view.key_id,
        private_key=view.private_key,
    )


@router.get(
    "/identity_providers",
    summary="The tenant's identity providers in the key's mode",
    response_model=IdentityProviderList,
    responses=error_responses(401, 403),
)
async def list_identity_providers(
    caller: SecretKey, runtime: RuntimeDep, session: SessionDep
) -> IdentityProviderList:
    views = await configs.list_providers(session, runtime.secret, caller.tenant_id, caller.mode)
    return IdentityProviderList(content=[_read(v) for v in views])


@router.get(
    "/identity_providers/{type}",
    summary="One identity provider (client secret and private key masked)",
    response_model=IdentityProviderRead,
    responses=error_responses(401, 403, 404),
)
async def get_identity_provider(
    caller: SecretKey, runtime: RuntimeDep, session: SessionDep, type: TypePath
) -> IdentityProviderRead:
    view = await configs.get_provider(session, runtime.secret, caller.tenant_id, caller.mode, type)
    return _read(view)


@router.put(
    "/identity_providers/{type}",
    summary="Set an identity provider for the key's mode",
    response_model=IdentityProviderRead,
    responses=error_responses(400, 401, 403, 404),
)
async def put_identity_provider(
    body: IdentityProviderUpdate,
    caller: SecretKey,
    runtime: RuntimeDep,
    session: SessionDep,
    type: TypePath,
) -> IdentityProviderRead:
    view = await configs.put_provider(
        session,
        runtime.clock,
        secret=runtime.secret,
        production=runtime.settings.env == "production",
        private_addresses_allowed=runtime.settings.private_provider_urls_allowed,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        kind=type,
        body=body.model_dump(),
    )
    return _read(view)


@router.delete(
    "/identity_providers/{type}",
    status_code=204,
    summary="Remove an identity provider (its customers' identities stay)",
    responses=error_responses(401, 403, 404),
)
async def delete_identity_provider(caller: SecretKey, session: SessionDep, type: TypePath) -> None:
    await configs.delete_provider(session, caller.tenant_id, caller.mode, type)
