"""Telling a tenant's owners that crm disabled one of their webhook endpoints.

An endpoint that failed every delivery for CRM_WEBHOOK_DISABLE_AFTER_SECONDS stops receiving
events; without a word to a person, the business would learn it only when its other systems
drift. The notice is an email to each active owner, queued in the same transaction that disables
the endpoint (so it leaves exactly when the endpoint is disabled), and always in live mode: it is
addressed to the business's people, not a test-mode customer, so it must really be delivered.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.events.models import WebhookEndpoint
from crm.messaging import outbox, templates
from crm.operators.models import Operator
from crm.tenants.models import Tenant
from crm.vocabulary import Channel, OperatorRole

PURPOSE = "WEBHOOK_DISABLED"
_SUBJECT = "A webhook endpoint of {tenant} was disabled"
_TEXT = """Every delivery to the webhook endpoint {url} ({mode} mode) failed for {duration}, so
{tenant} stopped sending it events.

Events are kept: once the receiver answers again, enable the endpoint (Back-Office API: PUT
/backoffice/v1/webhooks/{endpoint} with enabled set to true) and redeliver what it missed.
"""


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}" + ("" if count == 1 else "s")
    return "a moment"


async def tell_owners(
    session: AsyncSession,
    clock: Clock,
    *,
    secret: str,
    endpoint: WebhookEndpoint,
    failing_seconds: int,
) -> int:
    """Queue the notice to every active owner of the endpoint's tenant; returns how many."""
    owners = list(
        await session.scalars(
            select(Operator.email).where(
                Operator.tenant_id == endpoint.tenant_id,
                Operator.role == OperatorRole.OWNER,
                Operator.disabled_at.is_(None),
            )
        )
    )
    if not owners:
        return 0
    tenant = await session.get(Tenant, endpoint.tenant_id)
    values = {
        "tenant": tenant.name if tenant is not None else "crm",
        "url": endpoint.url,
        "mode": endpoint.mode,
        "endpoint": endpoint.id,
        "duration": _duration(failing_seconds),
    }
    # Plain text only: the notice is for the business's own people, and carries no link.
    message = templates.RenderedMessage(
        templates.fill(_SUBJECT, values), templates.fill(_TEXT, values), None
    )
    for email in owners:
        await outbox.enqueue(
            session,
            clock,
            secret=secret,
            tenant_id=endpoint.tenant_id,
            mode="live",
            channel=Channel.EMAIL,
            recipient=email,
            purpose=PURPOSE,
            message=message,
        )
    return len(owners)
