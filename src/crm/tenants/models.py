"""Tables of tenants, applications, API keys and per-tenant provider integrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm.db import Base, PortableJSON, UTCDateTime


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Per-tenant overrides of deployment defaults (the SMS daily budget); see schemas.TenantSettings.
    settings: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Application(Base):
    """An app or portal of a tenant; owns public keys and the self-service policy settings."""

    __tablename__ = "applications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # OTP limits, strict phone validation and similar per-app policy; see identities.policy.
    settings: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """A public (per application) or secret (per tenant) key; only its SHA-256 is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    application_id: Mapped[str | None] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), nullable=True
    )
    kind: Mapped[str] = mapped_column(String(10))  # public | secret
    mode: Mapped[str] = mapped_column(String(10))  # test | live
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The visible start of the key (e.g. pk_test_Ab12), enough to recognise it in a list.
    display_prefix: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Integration(Base):
    """A tenant's chosen SMS or email provider; credentials are encrypted at rest."""

    __tablename__ = "integrations"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(10), primary_key=True)  # SMS | EMAIL
    provider: Mapped[str] = mapped_column(String(40))
    config_encrypted: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


Index("ix_api_keys_tenant_kind_mode", ApiKey.tenant_id, ApiKey.kind, ApiKey.mode)
