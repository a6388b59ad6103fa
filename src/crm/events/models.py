"""The events table, the tenants' webhook endpoints and the log of delivery attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from crm.db import Base, PortableJSON, UTCDateTime


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        # The Back-Office list: a tenant's events of one mode, newest first.
        Index("ix_events_tenant_mode_created", "tenant_id", "mode", "created_at"),
        # The worker's fan-out query: events not yet handed to the endpoints.
        Index("ix_events_fanout_pending", "fanout_pending"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(10))
    type: Mapped[str] = mapped_column(String(40))
    # The contact's public id (null for events about something else, such as webhook.disabled);
    # a plain column, not a key, so an erased contact's events stay readable.
    contact_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    # The `data` object of the event as delivered.
    data: Mapped[dict[str, Any]] = mapped_column(PortableJSON)
    # True until the worker has written one outbox row per matching endpoint (see fanout.py).
    fanout_pending: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant_mode", "tenant_id", "mode"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(10))
    url: Mapped[str] = mapped_column(String(2048))
    # Event type names, or ["*"] for all.
    events: Mapped[list[str]] = mapped_column(PortableJSON)
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Why it was disabled by the server (failing for too long); null when a key holder did it.
    disabled_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The signing secret, encrypted with the server secret like provider credentials.
    secret_encrypted: Mapped[str] = mapped_column(String(500))
    # After a rotation the old secret signs too, until previous_expires_at.
    previous_secret_encrypted: Mapped[str | None] = mapped_column(String(500), nullable=True)
    previous_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The first failure since the last success: failing for too long disables the endpoint.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookAttempt(Base):
    """One POST of one event to one endpoint: what came back, never what was sent."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_endpoint_created", "endpoint_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36))
    outbox_id: Mapped[str] = mapped_column(String(36))
    attempt: Mapped[int] = mapped_column(Integer)
    # An HTTP status, or null when no answer came (refused, timed out).
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    # "sent", "retry", "failed".
    outcome: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
