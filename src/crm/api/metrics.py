"""GET /metrics: the server's HTTP and delivery metrics (every worker's, summed), process and
runtime metrics, and outbox gauges counted in the database."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse

from crm.api.deps import RuntimeDep
from crm.errors import RouteNotFound, Unauthenticated
from crm.events.delivery import oldest_undelivered
from crm.messaging.service import outbox_gauges
from crm.metrics import REGISTRY, ComputedGauge
from crm.settings import Settings

router = APIRouter(tags=["Operations"])
log = logging.getLogger("crm.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_OUTBOX = ComputedGauge(
    "crm_outbox_messages",
    "Live-mode outbox messages by channel and status (counted in the database).",
    ("channel", "status"),
)
_OLDEST = ComputedGauge(
    "crm_outbox_oldest_unsent_age_seconds",
    "Age of the oldest live message still queued or sending (0 when none).",
)
_WEBHOOK_OLDEST = ComputedGauge(
    "crm_webhook_oldest_undelivered_age_seconds",
    "Per webhook endpoint, the age of its oldest event delivery not yet sent or given up.",
    ("endpoint_id",),
)
_UP = ComputedGauge(
    "crm_outbox_gauges_up", "1 when the outbox gauges could be read from the database."
)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(request: Request, runtime: RuntimeDep) -> PlainTextResponse:
    """With CRM_METRICS_TOKEN set, only `Authorization: Bearer <token>` may read; in production
    without one, there is no /metrics at all (route counts and outbox sizes are not public)."""
    _authorize(runtime.settings, request.headers.get("authorization"))
    lines = [REGISTRY.render().rstrip("\n")]
    try:
        gauges = await outbox_gauges(runtime.engine, runtime.clock)
    except Exception as exc:
        # Scrapes must keep working while the database is down: the process metrics still help.
        log.warning("outbox gauges unavailable", extra={"error": type(exc).__name__})
        lines += _UP.render_samples([((), 0)])
    else:
        lines += _OUTBOX.render_samples(
            ((channel, status), count) for (channel, status), count in gauges.counts.items()
        )
        lines += _OLDEST.render_samples([((), gauges.oldest_due_age_seconds)])
        lines += _UP.render_samples([((), 1)])
        try:
            oldest = await oldest_undelivered(runtime.engine, runtime.clock)
        except Exception as exc:
            log.warning("webhook gauges unavailable", extra={"error": type(exc).__name__})
        else:
            lines += _WEBHOOK_OLDEST.render_samples(((e,), age) for e, age in oldest)
    return PlainTextResponse("\n".join(lines) + "\n", media_type=CONTENT_TYPE)


def _authorize(settings: Settings, authorization: str | None) -> None:
    if settings.metrics_token is None:
        if settings.env == "production":
            raise RouteNotFound()
        return
    expected = settings.metrics_token.get_secret_value().encode()
    scheme, _, given = (authorization or "").strip().partition(" ")
    # Constant time: the comparison must not tell how much of a guess was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise Unauthenticated(
            "/metrics needs Authorization: Bearer <CRM_METRICS_TOKEN>.",
            headers={"WWW-Authenticate": "Bearer"},
        )
