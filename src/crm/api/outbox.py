"""Back-Office test outbox: the messages test-mode keys would have sent (API.md section 1)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from crm.api.deps import RuntimeDep, SecretKey, SessionDep
from crm.api.responses import error_responses
from crm.clock import epoch
from crm.messaging import service
from crm.messaging.service import MAX_PAGE_SIZE
from crm.paging import Paging

router = APIRouter(tags=["Back-Office"])


class OutboxItem(BaseModel):
    id: str
    channel: str = Field(examples=["SMS"])
    recipient: str = Field(examples=["+35799000001"])
    purpose: str = Field(examples=["OTP"])
    subject: str | None = None
    body: str = Field(description="The text as it would have been sent (codes included).")
    status: str = Field(
        description="Delivery status: `queued`, `sending`, `sent`, `failed`, `cancelled` or "
        "`possibly_sent` (test-mode messages are `sent` at once).",
        examples=["sent"],
    )
    created_at: int = Field(description="Epoch seconds.")


class OutboxPage(BaseModel):
    paging: Paging
    content: list[OutboxItem]


@router.get(
    "/outbox",
    summary="Test-mode messages, newest first (test secret key only)",
    response_model=OutboxPage,
    responses=error_responses(401, 403),
)
async def list_outbox(
    caller: SecretKey,
    runtime: RuntimeDep,
    session: SessionDep,
    recipient: str | None = Query(None, description="Exact phone (E.164) or email address."),
    purpose: str | None = Query(
        None, description="`OTP`, `EMAIL_VERIFICATION` or `PASSWORD_RESET`."
    ),
    page: int = Query(1, description="1-based page number."),
    size: int = Query(10, description=f"Page size, at most {MAX_PAGE_SIZE}."),
) -> OutboxPage:
    result = await service.list_test_outbox(
        session,
        caller,
        secret=runtime.secret,
        recipient=recipient,
        purpose=purpose,
        page=page,
        size=size,
    )
    return OutboxPage(
        paging=Paging(
            page=result.page, size=result.size, total=result.total, has_more=result.has_more
        ),
        content=[
            OutboxItem(
                id=m.id,
                channel=m.channel,
                recipient=m.recipient,
                purpose=m.purpose,
                subject=m.subject,
                body=m.body,
                status=m.status,
                created_at=epoch(m.created_at) or 0,
            )
            for m in result.items
        ],
    )
