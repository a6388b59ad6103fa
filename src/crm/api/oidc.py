"""Self-Service redirect sign-in with Google, Apple, Facebook and OpenID Connect providers
(`GET /contacts/oidc/{type}`, the provider's callback by GET or, for Apple, by POST of a form),
and linking a provider account to the signed-in contact. Token sign-in is in oidc_signin."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from crm.api import oidc_signin
from crm.api.deps import PublicKey, RuntimeDep, SessionDep
from crm.api.responses import error_responses
from crm.api.selfservice import BEARER, ContactId, SignedInDep, _bearer, _own, signed_in
from crm.errors import InvalidRequest
from crm.runtime import Runtime
from crm.social import configs, redirect, signin
from crm.tenants.schemas import CallerKey

router = APIRouter(tags=["Self-Service"])


# --- redirect sign-in ------------------------------------------------------------------------

# Apple's form_post, documented here because the route reads the form itself (bounded).
CALLBACK_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "state": {"type": "string"},
                        "code": {"type": "string"},
                        "id_token": {"type": "string"},
                        "error": {"type": "string"},
                        "user": {
                            "type": "string",
                            "description": "JSON, first authorization only: "
                            '`{"name": {"firstName", "lastName"}, "email"}`.',
                        },
                    },
                }
            }
        },
    },
    # The browser comes here from the provider, cross-site, with no credential and no cookie
    # that could be relied on: `state` is the proof.
    "security": [{}],
}


class AuthorizationUrl(BaseModel):
    authorization_url: str = Field(description="Send the customer's browser here.")
    authorisation_url: str = Field(description="The same URL (CRM.COM's example spelling).")


class LinkIn(BaseModel):
    provider: str = Field(max_length=20, examples=["GOOGLE"])
    token: str = Field(max_length=16384, description="The provider's ID token.")
    nonce: str | None = Field(None, max_length=2000)


class LinkedIdentity(BaseModel):
    provider: str = Field(examples=["GOOGLE"])
    issuer: str = Field(examples=["https://accounts.google.com"])
    sub: str = Field(description="The provider's id of the account.")


@router.get(
    "/contacts/oidc/callback",
    summary="Where the identity provider sends the browser back (not called by apps)",
    description="Ends a redirect sign-in once: 303 to the application's redirect_url with "
    "`code` (one-time, 60 seconds) and `state`, or with `error` (an error code) and `state`. "
    "An unknown, used or expired state is 400 `OIDC_STATE_INVALID`.",
    status_code=303,
    response_class=RedirectResponse,
    responses=error_responses(400),
    # The browser comes here from the provider with no credential: `state` is the proof.
    openapi_extra={"security": [{}]},
)
async def oidc_callback(
    runtime: RuntimeDep,
    db: SessionDep,
    state: Annotated[str | None, Query(max_length=400)] = None,
    code: Annotated[str | None, Query(max_length=4000)] = None,
    error: Annotated[str | None, Query(max_length=400)] = None,
) -> Response:
    return await _end_flow(runtime, db, state=state, code=code, error=error)


async def _end_flow(
    runtime: Runtime,
    db: AsyncSession,
    *,
    state: str | None,
    code: str | None,
    error: str | None,
    user: str | None = None,
) -> Response:
    """Both callbacks: end the flow once and send the browser back to the application."""
    ended = await redirect.callback(
        db,
        runtime.clock,
        secret=runtime.secret,
        private_allowed=runtime.settings.private_provider_urls_allowed,
        public_url=runtime.settings.public_url,
        state=state,
        code=code,
        error=error,
        user=user,
    )
    return RedirectResponse(ended.location, status_code=303)


@router.post(
    "/contacts/oidc/callback",
    summary="Where Apple posts the browser back (response_mode=form_post; not called by apps)",
    description="The callback as a form (`application/x-www-form-urlencoded`, at most 16 KiB): "
    "`state`, `code`, `error`, and on an account's first authorization with Apple `user`, whose "
    "names go to the contact this sign-in creates. Answers as the GET callback does; a body "
    "that is not such a form is 400 `OIDC_CALLBACK_INVALID`.",
    status_code=303,
    response_class=RedirectResponse,
    responses=error_responses(400),
    openapi_extra=CALLBACK_FORM,
)
async def oidc_callback_form(request: Request, runtime: RuntimeDep, db: SessionDep) -> Response:
    form = redirect.read_callback_form(await request.body(), request.headers.get("content-type"))
    return await _end_flow(
        runtime,
        db,
        state=form.get("state"),
        code=form.get("code"),
        error=form.get("error"),
        user=form.get("user"),
    )


@router.get(
    "/contacts/oidc/{type}",
    summary="Start a sign-in with an identity provider (redirect)",
    description="`type`: google, apple, facebook or oidc. `redirect_url` must be one of the "
    "application's `oidc_redirect_urls` (exact match). With `Authorization: Bearer <access "
    "token>` the provider account is linked to the signed-in contact instead. Then: send the "
    "browser to `authorization_url`; it comes back to `redirect_url` with `code` and `state`, "
    "which `POST /contacts/authenticate` `{provider, code, state}` trades for the token object.",
    response_model=AuthorizationUrl,
    responses=error_responses(400, 401, 403, 404, 502),
)
async def oidc_start(
    request: Request,
    caller: PublicKey,
    runtime: RuntimeDep,
    db: SessionDep,
    type: Annotated[str, Path(max_length=20, examples=["google"])],
    redirect_url: Annotated[str, Query(max_length=2000)],
    login_hint: Annotated[str | None, Query(max_length=320)] = None,
) -> AuthorizationUrl:
    link_contact_pk = None
    if _bearer(request.headers.get("authorization")) is not None:
        signed = await signed_in(request)
        if signed.claims.tenant_id != caller.tenant_id or signed.claims.mode != caller.mode:
            raise InvalidRequest("The access token and the api_key are of different tenants.")
        link_contact_pk = signed.contact_pk
    url = await redirect.start(
        db,
        runtime.clock,
        secret=runtime.secret,
        private_allowed=runtime.settings.private_provider_urls_allowed,
        public_url=runtime.settings.public_url,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        application_id=caller.application_id,
        kind=type,
        redirect_url=redirect_url,
        login_hint=login_hint,
        link_contact_pk=link_contact_pk,
    )
    return AuthorizationUrl(authorization_url=url, authorisation_url=url)


@router.post(
    "/contacts/{id}/oidc_identities",
    status_code=201,
    summary="Link a provider account to the signed-in contact",
    description="The way to add a provider account whose email a contact already holds: the "
    "customer proves the contact first (signs in, e.g. with a code), then links. 409 "
    "`OIDC_IDENTITY_TAKEN` when the account already signs in another contact.",
    response_model=LinkedIdentity,
    responses=error_responses(400, 401, 403, 409, 502),
    openapi_extra=BEARER,
)
async def link_identity(
    body: LinkIn, signed: SignedInDep, runtime: RuntimeDep, db: SessionDep, id: ContactId
) -> LinkedIdentity:
    _own(signed, id)
    caller = CallerKey(
        key_id=None,
        tenant_id=signed.claims.tenant_id,
        tenant_name=signed.tenant_name,
        application_id=signed.claims.application_id,
        kind="public",
        mode=signed.claims.mode,  # type: ignore[arg-type]
    )
    verified = await oidc_signin.verify(db, runtime, caller, body.provider, body.token, body.nonce)
    await signin.contact_for(
        db,
        runtime.clock,
        verified,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        actor=signed.actor,
        link_contact_pk=signed.contact_pk,
    )
    return LinkedIdentity(
        provider=configs.TYPES[verified.config.type][0],
        issuer=verified.config.issuer,
        sub=str(verified.claims["sub"]),
    )
