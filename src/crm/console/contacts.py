"""Console pages of contacts: search, create, a contact's page, edit, erase. Every change goes
through the same services as the Back-Office API, with the operator as the audit trail's actor."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from crm.api.deps import RuntimeDep, SessionDep
from crm.clock import Clock
from crm.console.forms import blank_to_none, parse, problem
from crm.console.web import PREFIX, FormDep, Visit, VisitDep, page, redirect
from crm.contacts import service as contacts
from crm.contacts.errors import ContactNotFound
from crm.contacts.models import Contact
from crm.contacts.schemas import (
    ContactCreate,
    ContactUpdate,
    consent_entry,
    contact_read,
)
from crm.directory import search as contact_search
from crm.directory.erase import erase
from crm.errors import AppError, InvalidRequest
from crm.identities import service as identities
from crm.identities.reads import identity_read, session_read
from crm.operators import service as operators
from crm.operators.roles import Permission

router = APIRouter(prefix=PREFIX, include_in_schema=False)
SOURCE = "BACK_OFFICE"
SORTS = ("CREATED_DATE", "UPDATED_DATE", "LAST_NAME", "CODE")
PAGE_SIZE = 20
_PERSON_FIELDS = ("title", "first_name", "last_name", "email_address")
_EDITABLE = ("first_name", "last_name", "company_name", "email_address")


async def _search(
    session: AsyncSession, visit: Visit, *, q: str, sort: str, order: str, number: int
) -> dict[str, Any]:
    result = await contact_search.search(
        session,
        visit.tenant_id,
        visit.mode,
        contact_search.SearchQuery(
            search_value=q or None,
            sort=sort if sort in SORTS else "CREATED_DATE",  # type: ignore[arg-type]
            order="ASC" if order == "ASC" else "DESC",
            page=number,
            size=PAGE_SIZE,
        ),
    )
    rows = [contact_read(c, result.phones[c.pk]) for c in result.contacts]
    return {"rows": rows, "has_more": result.has_more}


@router.get("/contacts")
async def list_contacts(
    request: Request,
    visit: VisitDep,
    session: SessionDep,
    q: str = "",
    sort: str = "CREATED_DATE",
    order: str = "DESC",
    page_number: int = 1,
    done: str = "",
) -> Response:
    visit.require(Permission.CONTACTS_READ)
    q = q[:100]
    number = max(1, min(page_number, 10_000))
    try:
        found = await _search(session, visit, q=q, sort=sort, order=order, number=number)
        error = None
    except AppError as exc:
        found, error = {"rows": [], "has_more": False}, problem(exc)
    return page(
        request,
        "contacts.html",
        visit.context(
            q=q,
            sort=sort,
            order=order,
            page_number=number,
            sorts=SORTS,
            error=error,
            form={},
            form_error=None,
            done=done,
            **found,
        ),
    )


@router.post("/contacts")
async def create_contact(
    request: Request, visit: VisitDep, form: FormDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    visit.require(Permission.CONTACTS_WRITE)
    values: dict[str, Any] = blank_to_none(
        form, "id", "code", "contact_type", "company_name", *_PERSON_FIELDS
    )
    phone = blank_to_none(form, "phone_number", "phone_country")
    if phone.get("phone_number"):
        values["phones"] = [
            {
                "phone_type": "MOBILE",
                "number": phone["phone_number"],
                "country_code": phone.get("phone_country"),
                "is_primary": True,
            }
        ]
    try:
        body = parse(ContactCreate, values)
        contact = await contacts.create(
            session,
            runtime.clock,
            tenant_id=visit.tenant_id,
            mode=visit.mode,
            fields=body.contact_fields(only_set=False),
            source=SOURCE,
            actor=visit.actor,
            contact_id=body.id,
            code=body.code,
            contact_type=body.contact_type,
        )
    except AppError as exc:
        await session.rollback()
        found = await _search(session, visit, q="", sort="CREATED_DATE", order="DESC", number=1)
        return page(
            request,
            "contacts.html",
            visit.context(
                q="",
                sort="CREATED_DATE",
                order="DESC",
                page_number=1,
                sorts=SORTS,
                error=None,
                form=form,
                form_error=problem(exc),
                done="",
                **found,
            ),
            status_code=exc.status_code,
        )
    return redirect(f"{PREFIX}/contacts/{contact.id}", flash="Contact created.")


async def _contact(session: AsyncSession, visit: Visit, ref: str) -> Contact:
    if len(ref) > 36:
        raise ContactNotFound()
    return await contacts.get_by_ref(session, visit.tenant_id, visit.mode, ref)


async def contact_page(
    request: Request,
    visit: Visit,
    session: AsyncSession,
    clock: Clock,
    contact: Contact,
    *,
    done: str = "",
    error: dict[str, Any] | None = None,
    section: str = "",
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """A contact's whole page: fields, phones, identities, sessions, consents, audit trail."""
    phones = await contacts.phones_of(session, [contact.pk])
    audit = await contacts.list_audit(session, contact, page=1, size=50)
    names = {
        f"operator:{o.id}": o.email
        for o in await operators.list_operators(session, visit.tenant_id)
    }
    return page(
        request,
        "contact.html",
        visit.context(
            contact=contact_read(contact, phones[contact.pk]),
            identities=[
                identity_read(i) for i in await identities.list_identities(session, contact.pk)
            ],
            sessions=[
                session_read(s)
                for s in await identities.list_sessions(session, contact.pk, clock=clock)
            ],
            consents=[consent_entry(e) for e in await contacts.consent_history(session, contact)],
            audit=[{"event": e, "actor_name": names.get(e.actor, "")} for e in audit.events],
            done=done,
            error=error,
            section=section,
            form=form or {},
        ),
        status_code=status_code,
    )


@router.get("/contacts/{ref}")
async def show_contact(
    ref: str,
    request: Request,
    visit: VisitDep,
    session: SessionDep,
    runtime: RuntimeDep,
    done: str = "",
) -> Response:
    visit.require(Permission.CONTACTS_READ)
    contact = await _contact(session, visit, ref)
    return await contact_page(request, visit, session, runtime.clock, contact, done=done)


async def refused(
    request: Request,
    visit: Visit,
    session: AsyncSession,
    clock: Clock,
    ref: str,
    exc: AppError,
    section: str,
    form: dict[str, str],
) -> Response:
    """The contact's page again with what was refused beside its form; nothing was written."""
    await session.rollback()
    contact = await _contact(session, visit, ref)
    return await contact_page(
        request,
        visit,
        session,
        clock,
        contact,
        error=problem(exc),
        section=section,
        form=form,
        status_code=exc.status_code,
    )


@router.post("/contacts/{ref}/edit")
async def edit_contact(
    ref: str,
    request: Request,
    visit: VisitDep,
    form: FormDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    visit.require(Permission.CONTACTS_WRITE)
    contact = await _contact(session, visit, ref)
    # An emptied box clears the field, as `null` does on the API.
    values = {name: (form.get(name, "").strip() or None) for name in _EDITABLE if name in form}
    try:
        body = parse(ContactUpdate, values)
        await contacts.update_fields(
            session,
            runtime.clock,
            contact,
            body.contact_fields(only_set=True),
            code=body.echoed("code"),
            contact_type=body.echoed("contact_type"),
            source=SOURCE,
            actor=visit.actor,
        )
    except AppError as exc:
        return await refused(request, visit, session, runtime.clock, ref, exc, "edit", form)
    return redirect(f"{PREFIX}/contacts/{contact.id}", flash="Contact saved.")


@router.post("/contacts/{ref}/erase")
async def erase_contact(
    ref: str,
    request: Request,
    visit: VisitDep,
    form: FormDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    visit.require(Permission.CONTACTS_ERASE)
    contact = await _contact(session, visit, ref)
    typed = form.get("confirm", "").strip()
    if typed != contact.code:
        exc = InvalidRequest(
            "Type the contact's code to confirm the erasure.",
            details=[{"field": "confirm", "message": f"type {contact.code} to confirm"}],
        )
        return await refused(request, visit, session, runtime.clock, ref, exc, "erase", form)
    await erase(session, runtime.clock, contact, actor=visit.actor)
    return redirect(f"{PREFIX}/contacts", flash=f"Contact {contact.code} erased.")
