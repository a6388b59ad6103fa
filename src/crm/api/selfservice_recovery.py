"""The Self-Service routes for passwords and email proof by token: forgot, reset, verify."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from crm.api.deps import PublicKey, RuntimeDep, SessionDep
from crm.api.idempotency import IdempotencyKey
from crm.api.responses import error_responses
from crm.api.selfservice import ApiKeyHeader, _answer_once, _meta, _optional_key, router
from crm.identities import service
from crm.identities.policy import ClientOperation
from crm.identities.schemas import EmailVerificationIn, ForgotPasswordIn, ResetPasswordIn


@router.post("/contacts/forgot_password", status_code=204, summary="Email a password reset token")
async def forgot_password(
    request: Request,
    body: ForgotPasswordIn,
    caller: PublicKey,
    runtime: RuntimeDep,
    db: SessionDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Always 204: the answer never tells whether the username is registered."""
    return await _answer_once(
        request,
        db,
        runtime,
        caller,
        idempotency_key,
        lambda: service.forgot_password(
            db=db, ctx=runtime, caller=caller, username=body.username, meta=_meta(request)
        ),
        status_code=204,
        flow=ClientOperation.PASSWORD_RESET,
    )


@router.post(
    "/contacts/change_password",
    status_code=204,
    summary="Set a new password with a reset token",
    responses=error_responses(401),
)
async def reset_password(
    request: Request,
    body: ResetPasswordIn,
    runtime: RuntimeDep,
    db: SessionDep,
    api_key: ApiKeyHeader = None,
) -> Response:
    """The reset token names the tenant: no api_key is needed; one sent as well must be of the
    token's tenant and mode."""
    caller = await _optional_key(request, runtime, api_key)
    await service.reset_password(
        db=db, ctx=runtime, caller=caller, token=body.token, password=body.password
    )
    return Response(status_code=204)


@router.post(
    "/contacts/request_email_verification", status_code=204, summary="Email a verification token"
)
async def request_email_verification(
    request: Request,
    body: EmailVerificationIn,
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
        lambda: service.request_email_verification(
            db=db, ctx=runtime, caller=caller, email_address=body.email_address, meta=_meta(request)
        ),
        status_code=204,
        flow=ClientOperation.EMAIL_VERIFICATION,
    )
