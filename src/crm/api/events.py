"""Back-Office events: what happened to the tenant's contacts, newest first, and redelivery."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from crm.api.deps import RuntimeDep, SecretKey, SessionDep
from crm.api.responses import error_responses
from crm.events import fanout, queries, webhooks
from crm.events.models import Event
from crm.events.service import event_document
from crm.messaging.outbox import OUTBOX_DIRTY
from crm.paging import Paging

router = APIRouter(tags=["Events"])


class EventRead(BaseModel):
    id: str
    type: str = Field(examples=["contact.created"])
    created: int = Field(description="Epoch seconds.")
    mode: str = Field(examples=["live"])
    data: dict[str, Any] = Field(
        description="Always `contact` (`id`, `code`) for contact events; never a code, token, "
        "password or message body."
    )


class EventPageRead(BaseModel):
    paging: Paging
    content: list[EventRead]


class RedeliverBody(BaseModel):
    endpoint_id: str | None = Field(
        None, description="One endpoint; left out: every endpoint that wants this event type."
    )


class RedeliverRead(BaseModel):
    queued: int = Field(description="Deliveries queued, one per endpoint.")


def event_read(event: Event) -> EventRead:
    return EventRead.model_validate(event_document(event))


@router.get(
    "/events",
    summary="Events of the key's tenant and mode, newest first (secret key)",
    response_model=EventPageRead,
    responses=error_responses(401, 403),
)
async def list_events(
    caller: SecretKey,
    session: SessionDep,
    type: str | None = Query(None, description="One event type, such as `contact.created`."),
    contact_id: str | None = Query(None, description="The contact's id."),
    created_after: int | None = Query(None, description="Epoch seconds, exclusive."),
    created_before: int | None = Query(None, description="Epoch seconds, exclusive."),
    page: int = Query(1, description="1-based page number."),
    size: int = Query(10, description=f"Page size, at most {queries.MAX_PAGE_SIZE}."),
) -> EventPageRead:
    result = await queries.list_events(
        session,
        caller,
        type=type,
        contact_id=contact_id,
        created_after=created_after,
        created_before=created_before,
        page=page,
        size=size,
    )
    return EventPageRead(
        paging=Paging(page=result.page, size=result.size, total=None, has_more=result.has_more),
        content=[event_read(e) for e in result.events],
    )


@router.get(
    "/events/{event_id}",
    summary="One event (secret key)",
    response_model=EventRead,
    responses=error_responses(401, 403, 404),
)
async def get_event(caller: SecretKey, session: SessionDep, event_id: str) -> EventRead:
    return event_read(await queries.get_event(session, caller, event_id))


@router.post(
    "/events/{event_id}/redeliver",
    summary="Send an event again to the endpoints (secret key)",
    description="Queued like any delivery: signed anew, retried on failure, same event id.",
    response_model=RedeliverRead,
    status_code=202,
    responses=error_responses(401, 403, 404),
)
async def redeliver(
    caller: SecretKey,
    runtime: RuntimeDep,
    session: SessionDep,
    event_id: str,
    body: RedeliverBody | None = None,
) -> RedeliverRead:
    event = await queries.get_event(session, caller, event_id)
    if body is not None and body.endpoint_id is not None:
        targets = [await webhooks.get(session, caller, body.endpoint_id)]
    else:
        targets = [
            e
            for e in await webhooks.list_endpoints(session, caller)
            if e.enabled and webhooks.wants(e, event.type)
        ]
    queued = await fanout.redeliver(session, event, targets, runtime.clock.now())
    if queued:
        session.info[OUTBOX_DIRTY] = True
    return RedeliverRead(queued=len(queued))
