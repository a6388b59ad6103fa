"""Tables of the tenants' identity providers and of redirect sign-ins in progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm.db import Base, PortableJSON, UTCDateTime


class IdentityProvider(Base):
    """One OpenID Connect provider a tenant accepts in one mode; the client secret is encrypted."""

    __tablename__ = "identity_providers"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    mode: Mapped[str] = mapped_column(String(10), primary_key=True)  # test | live
    type: Mapped[str] = mapped_column(String(20), primary_key=True)  # google | apple | ...
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(300))
    client_secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Sign in with Apple: the business's team id, key id and private key (.p8, encrypted), from
    # which a short-lived client secret is signed for each code exchange.
    team_id: Mapped[str | None] = mapped_column(String(10), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(10), nullable=True)
    private_key_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    audiences: Mapped[list[Any]] = mapped_column(PortableJSON, default=list)
    applications: Mapped[list[Any]] = mapped_column(PortableJSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OidcFlow(Base):
    """A redirect sign-in: started with a `state`, ended once by the provider's callback, then
    traded once for tokens by the app. Only keyed hashes of `state` and the result are kept."""

    __tablename__ = "oidc_flows"
    __table_args__ = (Index("ix_oidc_flows_expires", "expires_at"),)

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(10))
    application_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    provider_type: Mapped[str] = mapped_column(String(20))
    redirect_url: Mapped[str] = mapped_column(String(2000))
    # The PKCE verifier and the nonce, encrypted: they only leave the server to the token
    # endpoint (the verifier) and are compared with the ID token (the nonce).
    secrets_encrypted: Mapped[str] = mapped_column(Text)
    # A signed-in contact that started the flow to link the provider identity to itself.
    link_contact_pk: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    called_back_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The one-time result the app trades for tokens, and the contact it signs in.
    result_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    result_contact_pk: Mapped[int | None] = mapped_column(Integer, nullable=True)
    result_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    traded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
