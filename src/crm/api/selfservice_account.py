"""The signed-in Self-Service routes: profile, unregister, sign-out, identities, password."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request
from starlette.responses import Response

from crm.api.deps import RuntimeDep, SessionDep
from crm.api.responses import error_responses
from crm.api.selfservice import (
    BEARER,
    ContactId,
    SignedInDep,
    _answer,
    _meta,
    _own,
    router,
)
from crm.contacts import service as contacts
from crm.directory.erase import erase
from crm.identities import proof, service
from crm.identities.schemas import IdentityAddIn, IdentityCodeIn, PasswordIn, ProfileUpdateIn

# --- signed in (Authorization: Bearer <access token>; api_key optional) -----------------


@router.put(
    "/contacts/{id}",
    summary="Update the signed-in contact",
    responses=error_responses(401, 403, 409),
    openapi_extra=BEARER,
)
async def update_contact(
    id: ContactId, body: ProfileUpdateIn, signed: SignedInDep, runtime: RuntimeDep, db: SessionDep
) -> dict[str, str]:
    """Partial: absent members stay as they are. `phone {type, country_code, number}` is the
    contact's primary phone (read back as the national number beside its country; `{number:
    ""}` leaves it, null removes it); `demographics` keeps `name_day`, `passport`,
    `id_details` and `statutory_number` too, and `company_profile` its registration, tax, VAT
    and industry members. Document numbers are unique per tenant and mode (409
    `DOCUMENT_IN_USE`)."""
    _own(signed, id)
    return {"id": await service.update_profile(db=db, ctx=runtime, signed=signed, body=body)}


@router.delete(
    "/contacts/{id}",
    summary="Unregister: erase personal data and end all sessions",
    responses=error_responses(401, 403),
    openapi_extra=BEARER,
)
async def unregister(
    id: ContactId, signed: SignedInDep, runtime: RuntimeDep, db: SessionDep
) -> Response:
    _own(signed, id)
    # Erasure spans contacts and identities, so it is the directory's, above both.
    contact = await contacts.get_by_pk(db, signed.contact_pk)
    await erase(db, runtime.clock, contact, actor=signed.actor)
    return Response(status_code=200)


@router.post(
    "/contacts/{id}/sign_out",
    status_code=204,
    summary="End this session",
    responses=error_responses(401, 403),
    openapi_extra=BEARER,
)
async def sign_out(
    id: ContactId, signed: SignedInDep, runtime: RuntimeDep, db: SessionDep
) -> Response:
    _own(signed, id)
    await service.sign_out(db=db, ctx=runtime, signed=signed)
    return Response(status_code=204)


async def _add_identity(
    request: Request,
    id: str,
    body: IdentityAddIn,
    signed: service.SignedIn,
    runtime: Any,
    db: Any,
) -> dict[str, str]:
    _own(signed, id)
    return {
        "id": await service.add_own_identity(
            db=db, ctx=runtime, signed=signed, body=body, meta=_meta(request)
        )
    }


@router.post(
    "/contacts/{id}/identities",
    status_code=201,
    summary="Add an identity (email, phone, password); a code is sent to prove it",
    responses=error_responses(401, 403, 409, 429),
    openapi_extra=BEARER,
)
async def add_identity(
    request: Request,
    id: ContactId,
    body: IdentityAddIn,
    signed: SignedInDep,
    runtime: RuntimeDep,
    db: SessionDep,
) -> dict[str, str]:
    """Needs a sign-in within the last few minutes, or `current_password`. The identity stays
    unproven (it cannot sign in) until the code sent to it is posted to `.../verify`."""
    return await _add_identity(request, id, body, signed, runtime, db)


@router.post(
    "/contacts/{id}/credentials",
    status_code=201,
    summary="Add credentials {username, password} (v1 spelling)",
    responses=error_responses(401, 403, 409, 429),
    openapi_extra=BEARER,
)
async def add_credentials(
    request: Request,
    id: ContactId,
    body: IdentityAddIn,
    signed: SignedInDep,
    runtime: RuntimeDep,
    db: SessionDep,
) -> dict[str, str]:
    return await _add_identity(request, id, body, signed, runtime, db)


IdentityId = Annotated[str, Path(max_length=64, description="One of the contact's identities.")]


@router.post(
    "/contacts/{id}/identities/{identity_id}/otp",
    summary="Send again the code that proves an added identity",
    responses=error_responses(401, 403, 404, 409, 429),
    openapi_extra=BEARER,
)
async def send_identity_code(
    request: Request,
    id: ContactId,
    identity_id: IdentityId,
    signed: SignedInDep,
    runtime: RuntimeDep,
    db: SessionDep,
) -> Response:
    _own(signed, id)

    async def send() -> service.CodeSent:
        auth_otp, masked = await proof.resend_proof_code(db, runtime, signed, identity_id)
        return service.CodeSent(auth_otp=auth_otp, obfuscated_value=masked)

    return await _answer(request, send())


@router.post(
    "/contacts/{id}/identities/{identity_id}/verify",
    status_code=204,
    summary="Prove an added identity with the code sent to it",
    responses=error_responses(401, 403, 404, 409, 429),
    openapi_extra=BEARER,
)
async def verify_identity(
    request: Request,
    id: ContactId,
    identity_id: IdentityId,
    body: IdentityCodeIn,
    signed: SignedInDep,
    runtime: RuntimeDep,
    db: SessionDep,
) -> Response:
    """Only in the session of the contact the identity was added to: until then it cannot sign
    in, blocks nobody, and a sign-in code request for it answers as for an unknown one."""
    _own(signed, id)
    return await _answer(
        request,
        proof.prove_in_session(db, runtime, signed, identity_id, body.code),
        status_code=204,
    )


@router.post(
    "/contacts/{id}/change_password",
    status_code=204,
    summary="Change the password; other sessions end",
    description="Needs a sign-in within the last few minutes, or `current_password`.",
    responses=error_responses(401, 403),
    openapi_extra=BEARER,
)
async def change_password(
    id: ContactId, body: PasswordIn, signed: SignedInDep, runtime: RuntimeDep, db: SessionDep
) -> Response:
    _own(signed, id)
    await service.change_password(
        db=db,
        ctx=runtime,
        signed=signed,
        password=body.password,
        current_password=body.current_password,
    )
    return Response(status_code=204)
