"""Console actions on a contact's credentials and sessions: add an identity, unlock one, end a
session or all of them. Each is the Back-Office API's service call, with the operator as actor."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from crm.api.deps import RuntimeDep, SessionDep
from crm.console.contacts import _contact, refused
from crm.console.forms import blank_to_none, parse
from crm.console.web import PREFIX, FormDep, VisitDep, redirect
from crm.contacts import service as contacts
from crm.contacts.schemas import IdentityCreate
from crm.errors import AppError, NotFound
from crm.identities import service as identities
from crm.identities.identities import mark_verified
from crm.identities.sessions import revoke_session
from crm.operators.roles import Permission
from crm.vocabulary import RevokeReason

router = APIRouter(prefix=PREFIX, include_in_schema=False)


class ContactSessionNotFound(NotFound):
    code = "CONSOLE_SESSION_NOT_FOUND"
    message = "No such live session of this contact."


@router.post("/contacts/{ref}/identities")
async def add_identity(
    ref: str,
    request: Request,
    visit: VisitDep,
    form: FormDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    visit.require(Permission.CONTACTS_WRITE)
    contact = await _contact(session, visit, ref)
    values: dict[str, Any] = blank_to_none(
        form, "provider", "email", "phone_number", "country_code"
    )
    if form.get("password"):
        values["password"] = form["password"]
    values["verified"] = form.get("verified") == "true"
    try:
        body = parse(IdentityCreate, values)
        await identities.add_identity(
            session,
            runtime.clock,
            runtime.secret,
            contact=contact,
            actor=visit.actor,
            **body.resolved(),
        )
    except AppError as exc:
        kept = {k: v for k, v in form.items() if k != "password"}  # never echoed back
        return await refused(request, visit, session, runtime.clock, ref, exc, "identity", kept)
    return redirect(f"{PREFIX}/contacts/{contact.id}", flash="Credentials added.")


@router.post("/contacts/{ref}/identities/{identity_id}/unlock")
async def unlock_identity(
    ref: str,
    identity_id: str,
    visit: VisitDep,
    form: FormDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    visit.require(Permission.CONTACTS_WRITE)
    contact = await _contact(session, visit, ref)
    await identities.unlock_identity(
        session, runtime.clock, contact=contact, identity_id=identity_id, actor=visit.actor
    )
    return redirect(f"{PREFIX}/contacts/{contact.id}", flash="Identity unlocked.")


@router.post("/contacts/{ref}/identities/{identity_id}/verify")
async def verify_identity(
    ref: str,
    identity_id: str,
    visit: VisitDep,
    form: FormDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    visit.require(Permission.CONTACTS_WRITE)
    contact = await _contact(session, visit, ref)
    await mark_verified(
        session, runtime.clock, contact=contact, identity_id=identity_id, actor=visit.actor
    )
    return redirect(f"{PREFIX}/contacts/{contact.id}", flash="Identity marked verified.")


@router.post("/contacts/{ref}/sessions/{session_id}/end")
async def end_session(
    ref: str,
    session_id: str,
    visit: VisitDep,
    form: FormDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    visit.require(Permission.CONTACTS_WRITE)
    contact = await _contact(session, visit, ref)
    live = await identities.list_sessions(session, contact.pk, clock=runtime.clock)
    # Only this contact's own session: an id alone must not end another contact's.
    if session_id not in {s.id for s in live}:
        raise ContactSessionNotFound()
    await revoke_session(session, runtime.clock, session_id, RevokeReason.BACK_OFFICE)
    contacts.record_audit(session, runtime.clock, contact, "SESSION_REVOKED", visit.actor, [])
    return redirect(f"{PREFIX}/contacts/{contact.id}", flash="Session ended.")


@router.post("/contacts/{ref}/sessions/end-all")
async def end_all_sessions(
    ref: str, visit: VisitDep, form: FormDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    visit.require(Permission.CONTACTS_WRITE)
    contact = await _contact(session, visit, ref)
    revoked = await identities.revoke_all_sessions(
        session, runtime.clock, contact.pk, RevokeReason.BACK_OFFICE
    )
    contacts.record_audit(session, runtime.clock, contact, "SESSIONS_REVOKED", visit.actor, [])
    return redirect(f"{PREFIX}/contacts/{contact.id}", flash=f"{revoked} session(s) ended.")
