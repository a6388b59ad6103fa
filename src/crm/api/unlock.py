"""The Back-Office unlock of a locked identity (`/backoffice/v1/contacts/{ref}/identities/{id}/unlock`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from crm.api.backoffice import actor_of
from crm.api.deps import RuntimeDep, SecretKey, SessionDep
from crm.api.responses import error_responses
from crm.contacts import service as contacts
from crm.identities import service as identities

router = APIRouter(tags=["Back-Office"])


@router.post(
    "/contacts/{ref}/identities/{identity_id}/unlock",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404),
    summary="Unlock an identity",
    operation_id="unlockIdentity",
)
async def unlock_identity(
    ref: str, identity_id: str, caller: SecretKey, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """Lift the lock that too many failed attempts put on an identity, and restart its failure
    count and the contact's password count, so the owner can sign in again at once. Recorded in
    the contact's audit trail as `IDENTITY_UNLOCKED`. Unlocking an identity that is not locked
    changes nothing but the counts. 404 if the identity is not this contact's."""
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    await identities.unlock_identity(
        session, runtime.clock, contact=contact, identity_id=identity_id, actor=actor_of(caller)
    )
    return Response(status_code=204)
