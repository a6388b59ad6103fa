"""Tables of operators (the business's agents and administrators) and their console sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm.db import Base, PortableJSON, UTCDateTime


class Operator(Base):
    """One person of one tenant who signs in to the console; not a contact."""

    __tablename__ = "operators"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # Lowercased; unique across the deployment, so the sign-in form needs no tenant.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(10))  # vocabulary.OperatorRole
    password_hash: Mapped[str] = mapped_column(Text)
    # Encrypted base32 TOTP secret once enrolment is confirmed; None: no second factor.
    totp_secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The time step of the last code accepted: a code is good once, not for its whole window.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OperatorSession(Base):
    """A console sign-in; only the SHA-256 of the cookie's token is stored."""

    __tablename__ = "operator_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    operator_id: Mapped[str] = mapped_column(
        ForeignKey("operators.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The synchronizer token every state-changing form of this session carries.
    csrf_token: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(10))  # the mode the console shows: test | live
    user_agent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OperatorActivity(Base):
    """One thing an operator did (or tried: failed sign-ins), written in the same transaction as
    the change, so the log cannot claim what did not happen nor miss what did."""

    __tablename__ = "operator_activity"
    __table_args__ = (Index("ix_operator_activity_tenant_id_id", "tenant_id", "id"),)

    # UUIDv7: ordered by time, so the newest-first page is an index range.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # Null for the command line; kept (not cascaded) when an operator is disabled.
    operator_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # The operator's email at the time (an operator's row may change), or "command line".
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(40))  # vocabulary.OperatorAction
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    detail: Mapped[dict[str, str] | None] = mapped_column(PortableJSON, nullable=True)
    ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
