"""The Self-Service API (`/self-service/v1` and `/v2`): apps and portals acting for one contact."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from crm.api import oidc_signin
from crm.api.deps import PublicKey, RuntimeDep, SessionDep, resolve_api_key
from crm.api.errors import app_error_response
from crm.api.idempotency import IdempotencyKey, run_once
from crm.api.responses import JsonResponse, error_responses
from crm.errors import Unauthenticated, WrongKeyKind
from crm.identities import service
from crm.identities.errors import NotOwnContact, RefreshTokenInvalid, StatefulFailure
from crm.identities.policy import ClientOperation
from crm.identities.schemas import (
    AuthenticateIn,
    OtpRequestIn,
    RegisterIn,
    ValidateIn,
    without_none,
)
from crm.runtime import Runtime
from crm.tenants.schemas import CallerKey

router = APIRouter(tags=["Self-Service"])

ApiKeyHeader = Annotated[
    str | None,
    Header(
        alias="api_key",
        convert_underscores=False,
        description="Optional after sign-in; must then be of the same tenant.",
    ),
]
AuthorizationHeader = Annotated[
    str | None, Header(description="`Bearer <token>` (a bare token is accepted too).")
]


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    text = value.strip()
    scheme, _, rest = text.partition(" ")
    if rest and scheme.lower() == "bearer":
        text = rest.strip()
    return text or None


def _meta(request: Request) -> service.RequestMeta:
    return service.RequestMeta(
        user_agent=request.headers.get("user-agent"),
        ip_address=request.client.host if request.client else None,
    )


async def _optional_key(
    request: Request, runtime: Runtime, api_key: str | None
) -> CallerKey | None:
    caller = await resolve_api_key(request, runtime, api_key)
    if caller is not None and caller.kind != "public":
        raise WrongKeyKind(
            "A secret key may not be used on the Self-Service API; use a public key."
        )
    return caller


async def signed_in(request: Request) -> service.SignedIn:
    """The contact behind `Authorization: Bearer <access token>`; no api_key needed."""
    # Read directly rather than through RuntimeDep: that dependency is a plain function, which
    # FastAPI runs in a worker thread, a hop the signed-in hot path can do without.
    # Headers are read directly too: declared Header parameters cost a validation pass each.
    runtime: Runtime = request.app.state.runtime
    token = _bearer(request.headers.get("authorization"))
    api_key = request.headers.get("api_key")
    if token is None:
        raise Unauthenticated("An access token is required: Authorization: Bearer <token>.")
    caller = await _optional_key(request, runtime, api_key)
    signed = await service.resolve_access(runtime, token, caller)
    request.state.tenant_id = signed.claims.tenant_id
    request.state.application_id = signed.claims.application_id  # for CORS
    return signed


SignedInDep = Annotated[service.SignedIn, Depends(signed_in)]
# Documents the credential of signed-in routes (signed_in reads the header itself, for speed).
BEARER: dict[str, Any] = {"security": [{"BearerAuth": []}]}
_CONTACT_ID_MAX = 64
ContactId = Annotated[
    str, Path(max_length=_CONTACT_ID_MAX, description="The signed-in contact's id.")
]


def _own(signed: service.SignedIn, contact_id: str) -> None:
    if contact_id != signed.claims.contact_id:
        raise NotOwnContact()


def _token_object(grant: service.Grant) -> dict[str, Any]:
    contact = grant.contact
    body: dict[str, Any] = without_none(
        {
            "access_token": grant.access_token,
            "refresh_token": grant.refresh_token,
            # v2 clients read expiration_date, v1 clients exp: both are the access token's expiry.
            "expiration_date": grant.expires_at,
            "exp": grant.expires_at,
            "contact": {
                "id": contact.id,
                "code": contact.code,
                "type": contact.contact_type,
                "title": contact.title,
                "first_name": contact.first_name,
                "last_name": contact.last_name,
                "company_name": contact.company_name,
                "is_verified": grant.is_verified,
            },
            "organisations": [
                {"id": grant.tenant_id, "name": grant.tenant_name, "type": "BUSINESS"}
            ],
        }
    )
    return body


def _render(result: object) -> Any:
    if isinstance(result, service.Grant):
        return _token_object(result)
    if isinstance(result, service.CodeSent):
        return {"auth_otp": result.auth_otp, "obfuscated_value": result.obfuscated_value}
    return result


async def _answer(request: Request, work: Awaitable[object], status_code: int = 200) -> Response:
    """Run a service call; a StatefulFailure is answered as an error while the transaction still
    commits, so counted failures and revocations are kept."""
    try:
        result = await work
    except StatefulFailure as exc:
        return app_error_response(request, exc)
    if status_code == 204:
        return Response(status_code=204)
    return JsonResponse(_render(result), status_code=status_code)


async def _answer_once(
    request: Request,
    db: AsyncSession,
    runtime: Runtime,
    caller: CallerKey,
    key: str | None,
    work: Callable[[], Awaitable[object]],
    status_code: int = 200,
    *,
    flow: ClientOperation | None = None,
) -> Response:
    """Like _answer, honouring an Idempotency-Key: a retry gets the first answer, and no second
    code or email is sent. Stored answers (tokens included) are encrypted at rest. `flow` names
    the operation's per-client limit, which a replay counts against like a first try."""

    async def rendered() -> Any:
        try:
            return _render(await work())
        except StatefulFailure as exc:
            return app_error_response(request, exc)

    async def attempt() -> None:
        if flow is None:
            return
        await service._client_limit(db, runtime, caller, _meta(request), flow)

    return await run_once(
        request,
        db,
        runtime,
        caller,
        key,
        rendered,
        status_code=status_code,
        attempt=attempt,
    )


# GET routes first: FastAPI tries routes in order, and the signed-in profile read is the hot
# path. verify_email must precede {id}, which would otherwise capture it.
@router.get(
    "/contacts/verify_email",
    summary="Mark an email identity verified",
    responses=error_responses(401),
)
async def verify_email(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    token: Annotated[str, Query(min_length=1, max_length=200)],
    api_key: ApiKeyHeader = None,
) -> Response:
    """The link's token names the tenant: no api_key is needed (an app opening the link sends
    none); one sent as well must be of the token's tenant and mode."""
    caller = await _optional_key(request, runtime, api_key)
    await service.verify_email(db=db, ctx=runtime, caller=caller, token=token)
    return Response(status_code=200)


async def get_contact(id: ContactId, signed: SignedInDep) -> Response:
    """The hot path: the access token's session and the contact come from one query, no ORM."""
    _own(signed, id)
    return JsonResponse(without_none(service.profile(signed.profile)))


class _SignedInReadRoute(APIRoute):
    """The profile read without FastAPI's dependency solver, which costs more than the rest of
    the route: the declaration (and so the OpenAPI document) is unchanged, and an id the
    declaration refuses (over 64 characters) still goes through FastAPI for the same 400."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        declared = super().get_route_handler()

        async def handler(request: Request) -> Response:
            # The solver resolves the token before the path: a bad token is 401 whatever the id.
            signed = await signed_in(request)
            contact_id = request.path_params.get("id")
            if not isinstance(contact_id, str) or len(contact_id) > _CONTACT_ID_MAX:
                return await declared(request)
            return await get_contact(contact_id, signed)

        return handler


router.add_api_route(
    "/contacts/{id}",
    get_contact,
    methods=["GET"],
    summary="The signed-in contact's profile",
    responses=error_responses(401, 403),
    openapi_extra=BEARER,
    route_class_override=_SignedInReadRoute,
)


# --- before sign-in (public api_key) -----------------------------------------------------


@router.post(
    "/contacts/register",
    status_code=201,
    summary="Register a contact",
    responses=error_responses(401, 403, 409, 429),
)
async def register(
    request: Request,
    body: RegisterIn,
    caller: PublicKey,
    runtime: RuntimeDep,
    db: SessionDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """PHONE, or EMAIL without password: 201 `{auth_otp, obfuscated_value}` and a code is sent.
    EMAIL with password: 201 with the token object and a verification email."""
    return await _answer_once(
        request,
        db,
        runtime,
        caller,
        idempotency_key,
        lambda: (
            oidc_signin.register(db, runtime, caller, body, _meta(request))
            if oidc_signin.is_provider_sign_in(body.identity.provider)
            else service.register(db=db, ctx=runtime, caller=caller, body=body, meta=_meta(request))
        ),
        status_code=201,
        flow=ClientOperation.REGISTER,
    )


@router.post(
    "/contacts/otp", summary="Send a one-time code", responses=error_responses(401, 403, 404, 429)
)
async def request_otp(
    request: Request,
    body: OtpRequestIn,
    caller: PublicKey,
    runtime: RuntimeDep,
    db: SessionDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Credentials: `EMAIL`, `PHONE` (without its calling code: the application's
    `default_country`), or a document of the contact (`LOYALTY_IDENTIFIER`, `ID_NUMBER`,
    `PASSPORT`, `STATUTORY_ID`), whose proven phone or email gets the code; `BIRTHDATE`
    (YYYY-MM-DD) only beside another. Nothing matching answers as an unknown credential does
    (200, nothing sent). `CARD` and `GIFT_PASS`: 400 `CREDENTIAL_NOT_SUPPORTED`."""
    return await _answer_once(
        request,
        db,
        runtime,
        caller,
        idempotency_key,
        lambda: service.request_code(
            db=db, ctx=runtime, caller=caller, body=body, meta=_meta(request)
        ),
        flow=ClientOperation.OTP_REQUEST,
    )


@router.post(
    "/contacts/validate_otp",
    summary="Validate a one-time code (v2 spelling)",
    responses=error_responses(401, 403, 404, 429),
)
@router.post(
    "/contacts/validate-otp",
    name="validate_otp_v1",  # one handler on two paths; FastAPI's ids need distinct names
    summary="Validate a one-time code (v1 spelling)",
    responses=error_responses(401, 403, 404, 429),
)
async def validate_otp(
    request: Request,
    body: ValidateIn,
    caller: PublicKey,
    runtime: RuntimeDep,
    db: SessionDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await _answer_once(
        request,
        db,
        runtime,
        caller,
        idempotency_key,
        lambda: service.validate(db=db, ctx=runtime, caller=caller, body=body, meta=_meta(request)),
        flow=ClientOperation.OTP_VALIDATE,
    )


@router.post(
    "/contacts/authenticate",
    summary="Sign in with a password, or ask for a code",
    responses=error_responses(401, 403, 404, 429),
)
async def authenticate(
    request: Request,
    body: AuthenticateIn,
    caller: PublicKey,
    runtime: RuntimeDep,
    db: SessionDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await _answer_once(
        request,
        db,
        runtime,
        caller,
        idempotency_key,
        lambda: (
            oidc_signin.authenticate(db, runtime, caller, body, _meta(request))
            if oidc_signin.is_provider_sign_in(body.provider)
            else service.authenticate(
                db=db, ctx=runtime, caller=caller, body=body, meta=_meta(request)
            )
        ),
        flow=ClientOperation.SIGN_IN,
    )


@router.post(
    "/contacts/refresh",
    summary="Rotate the refresh token",
    responses=error_responses(401),
    openapi_extra=BEARER,
)
async def refresh(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    authorization: AuthorizationHeader = None,
    refresh_token: Annotated[
        str | None, Header(alias="refresh_token", convert_underscores=False)
    ] = None,
    api_key: ApiKeyHeader = None,
) -> Response:
    """The refresh token comes from `Authorization: Bearer`, a bare `Authorization`, or a
    `refresh_token` header; no body and no api_key are needed."""
    # The refresh_token header names the token explicitly; Authorization may carry the access
    # token a client attaches to every call.
    token = _bearer(refresh_token) or _bearer(authorization)
    if token is None:
        raise RefreshTokenInvalid("A refresh token is required in the Authorization header.")
    caller = await _optional_key(request, runtime, api_key)
    return await _answer(
        request,
        service.refresh(db=db, ctx=runtime, token=token, meta=_meta(request), caller=caller),
    )


@router.get(
    "/contacts",
    summary="Does a contact use this email or phone?",
    responses=error_responses(401, 403, 429),
)
async def contact_exists(
    request: Request,
    caller: PublicKey,
    runtime: RuntimeDep,
    db: SessionDep,
    email_address: Annotated[str | None, Query(max_length=320)] = None,
    phone: Annotated[str | None, Query(max_length=64)] = None,
    country_code: Annotated[str | None, Query(max_length=8)] = None,
) -> dict[str, bool]:
    """`phone` without its calling code and without `country_code` is read in the
    application's `default_country`."""
    exists = await service.contact_exists(
        db=db,
        ctx=runtime,
        caller=caller,
        email_address=email_address,
        phone=phone,
        country_code=country_code,
        client=request.client.host if request.client else "unknown",
    )
    return {"contact_exists": exists}


# Registered last, on this router, in this order: the password and email-verification routes,
# then the signed-in write routes, follow every route above.
from crm.api import selfservice_recovery  # noqa: E402, F401, I001
from crm.api import selfservice_account  # noqa: E402, F401
