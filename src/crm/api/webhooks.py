"""Back-Office webhook endpoints: where a tenant's events are POSTed, signed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from crm.api.deps import RuntimeDep, SecretKey, SessionDep
from crm.api.responses import error_responses
from crm.clock import epoch
from crm.events import queries, webhooks
from crm.paging import Paging

router = APIRouter(tags=["Webhooks"])

_URL = Field(
    None,
    description="Where events are POSTed: http(s); https in production; no private, loopback "
    "or link-local address unless the deployment allows them (like provider URLs).",
    examples=["https://example.com/crm-events"],
)
_EVENTS = Field(
    None,
    description='Event types, or `["*"]` for all of them.',
    examples=[["contact.created", "identity.verified"]],
)


class WebhookCreate(BaseModel):
    url: Any = _URL
    events: Any = _EVENTS
    description: Any = Field(None, description="Free text, at most 500 characters.")


class WebhookUpdate(BaseModel):
    url: Any = _URL
    events: Any = _EVENTS
    description: Any = Field(None, description="Free text, at most 500 characters.")
    enabled: Any = Field(
        None, description="Enabling an endpoint the server disabled starts its count afresh."
    )


class WebhookRead(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(
        description="Set when the server disabled the endpoint (every delivery failed for days)."
    )
    mode: str
    created_at: int = Field(description="Epoch seconds.")
    updated_at: int = Field(description="Epoch seconds.")


class WebhookWithSecret(WebhookRead):
    secret: str = Field(
        description="The signing secret; shown only in this answer, stored encrypted."
    )


class WebhookList(BaseModel):
    content: list[WebhookRead]


class AttemptRead(BaseModel):
    id: str
    event_id: str
    attempt: int = Field(description="Try number of this delivery (1-based).")
    status_code: int | None = Field(description="The endpoint's HTTP status; null: no answer.")
    duration_ms: int
    outcome: str = Field(description="`sent`, `retry` or `failed`.")
    error: str | None
    created_at: int = Field(description="Epoch seconds.")


class AttemptPage(BaseModel):
    paging: Paging
    content: list[AttemptRead]


@router.post(
    "/webhooks",
    summary="Add a webhook endpoint for the key's mode (secret key)",
    description="Answers with the signing `secret`, shown only here (and on rotation).",
    response_model=WebhookWithSecret,
    status_code=201,
    responses=error_responses(401, 403),
)
async def create_webhook(
    body: WebhookCreate, caller: SecretKey, runtime: RuntimeDep, session: SessionDep
) -> WebhookWithSecret:
    created = await webhooks.create(
        session,
        settings=runtime.settings,
        server_secret=runtime.secret,
        clock=runtime.clock,
        caller=caller,
        url=body.url,
        events=body.events,
        description=body.description,
    )
    return WebhookWithSecret(**webhooks.public_fields(created.endpoint), secret=created.secret)


@router.get(
    "/webhooks",
    summary="The webhook endpoints of the key's tenant and mode (secret key)",
    response_model=WebhookList,
    responses=error_responses(401, 403),
)
async def list_webhooks(caller: SecretKey, session: SessionDep) -> WebhookList:
    rows = await webhooks.list_endpoints(session, caller)
    return WebhookList(content=[WebhookRead(**webhooks.public_fields(r)) for r in rows])


@router.get(
    "/webhooks/{webhook_id}",
    summary="One webhook endpoint, without its secret (secret key)",
    response_model=WebhookRead,
    responses=error_responses(401, 403, 404),
)
async def get_webhook(caller: SecretKey, session: SessionDep, webhook_id: str) -> WebhookRead:
    return WebhookRead(**webhooks.public_fields(await webhooks.get(session, caller, webhook_id)))


@router.put(
    "/webhooks/{webhook_id}",
    summary="Change a webhook endpoint's URL, events or description, or enable it (secret key)",
    description="Fields left out keep their values.",
    response_model=WebhookRead,
    responses=error_responses(401, 403, 404),
)
async def update_webhook(
    body: WebhookUpdate,
    caller: SecretKey,
    runtime: RuntimeDep,
    session: SessionDep,
    webhook_id: str,
) -> WebhookRead:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    row = await webhooks.update(
        session,
        settings=runtime.settings,
        clock=runtime.clock,
        caller=caller,
        endpoint_id=webhook_id,
        changes=changes,
    )
    return WebhookRead(**webhooks.public_fields(row))


@router.delete(
    "/webhooks/{webhook_id}",
    summary="Remove a webhook endpoint; its queued deliveries are dropped (secret key)",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404),
)
async def delete_webhook(caller: SecretKey, session: SessionDep, webhook_id: str) -> Response:
    await webhooks.delete(session, caller, webhook_id)
    return Response(status_code=204)


@router.post(
    "/webhooks/{webhook_id}/rotate_secret",
    summary="Make a new signing secret; the old one signs too for 24 hours (secret key)",
    description="During the overlap each delivery carries two `v1=` signatures.",
    response_model=WebhookWithSecret,
    responses=error_responses(401, 403, 404),
)
async def rotate_webhook_secret(
    caller: SecretKey, runtime: RuntimeDep, session: SessionDep, webhook_id: str
) -> WebhookWithSecret:
    rotated = await webhooks.rotate(
        session,
        server_secret=runtime.secret,
        clock=runtime.clock,
        caller=caller,
        endpoint_id=webhook_id,
    )
    return WebhookWithSecret(**webhooks.public_fields(rotated.endpoint), secret=rotated.secret)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    summary="An endpoint's delivery attempts, newest first (secret key)",
    description="Status code, duration and error of each try; never the body.",
    response_model=AttemptPage,
    responses=error_responses(401, 403, 404),
)
async def list_deliveries(
    caller: SecretKey,
    session: SessionDep,
    webhook_id: str,
    page: int = Query(1, description="1-based page number."),
    size: int = Query(10, description=f"Page size, at most {queries.MAX_PAGE_SIZE}."),
) -> AttemptPage:
    endpoint = await webhooks.get(session, caller, webhook_id)
    rows, has_more = await queries.list_attempts(session, endpoint, page=page, size=size)
    return AttemptPage(
        paging=Paging(page=page, size=size, total=None, has_more=has_more),
        content=[
            AttemptRead(
                id=r.id,
                event_id=r.event_id,
                attempt=r.attempt,
                status_code=r.status_code,
                duration_ms=r.duration_ms,
                outcome=r.outcome,
                error=r.error,
                created_at=epoch(r.created_at) or 0,
            )
            for r in rows
        ],
    )
