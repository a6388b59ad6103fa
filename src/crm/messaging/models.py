"""The outbox table: every message is written here inside the caller's transaction, sent after commit."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm.db import Base, UTCDateTime


class OutboxStatus(StrEnum):
    """Where a message stands. `possibly_sent`: a one-time code whose request reached a provider
    that gave no answer (timeout, dropped connection) and that cannot drop a repeat, so it is
    not sent again by itself: an operator looks (`crm outbox list --status possibly_sent`)."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    POSSIBLY_SENT = "possibly_sent"


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        # The worker's claim query: due messages in order.
        Index("ix_outbox_status_next_attempt", "status", "next_attempt_at"),
        Index("ix_outbox_tenant_mode_created", "tenant_id", "mode", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(10))
    contact_pk: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("contacts.pk", ondelete="SET NULL"),
        nullable=True,
        index=True,
    )
    channel: Mapped[str] = mapped_column(String(10))  # SMS | EMAIL
    recipient: Mapped[str] = mapped_column(String(254))
    purpose: Mapped[str] = mapped_column(String(30))
    subject: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # Encrypted with the server secret (outbox.seal_body); blanked once the message is sent or
    # cancelled, since the text holds the code or the link.
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    # An OutboxStatus value.
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # An OTP message is worthless after its code expires: cancel rather than send it late.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(40), nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class MessageTemplate(Base):
    """A tenant's own words for one message purpose in one language (and mode), replacing the
    built-in ones: the SMS text (one-time codes only) and the email's subject, text and HTML."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("tenant_id", "mode", "purpose", "language"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(10))
    purpose: Mapped[str] = mapped_column(String(30))
    # A lower-case language tag: "en", "el", "pt-br".
    language: Mapped[str] = mapped_column(String(20))
    sms_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    email_subject: Mapped[str | None] = mapped_column(String(300), nullable=True)
    email_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    email_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
