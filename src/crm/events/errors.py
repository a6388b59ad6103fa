"""Client-facing errors of the events and webhooks API."""

from __future__ import annotations

from crm.errors import InvalidRequest, NotFound


class EventNotFound(NotFound):
    code = "EVENT_NOT_FOUND"
    message = "No event with this id for this tenant and mode."


class WebhookNotFound(NotFound):
    code = "WEBHOOK_NOT_FOUND"
    message = "No webhook endpoint with this id for this tenant and mode."


class WebhookInvalid(InvalidRequest):
    code = "WEBHOOK_INVALID"
    message = "The webhook endpoint is not valid."


class WebhookLimitReached(InvalidRequest):
    code = "WEBHOOK_LIMIT_REACHED"
    message = "A tenant has at most 16 webhook endpoints per mode."
