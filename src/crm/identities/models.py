"""Tables of sign-in identities, one-time code challenges, sessions and JWT signing keys."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from crm.db import Base, PortableJSON, UTCDateTime


class IdentityOrigin(StrEnum):
    """Who put an identity on its contact; it decides what the identity's first proof ends."""

    REGISTRATION = "REGISTRATION"  # created its contact through Self-Service register
    SELF_SERVICE = "SELF_SERVICE"  # added by a signed-in customer to their own contact
    BACK_OFFICE = "BACK_OFFICE"  # the business's own claim (Back-Office API, console, CLI)


# An identity "holds" its identifier once proven, or at once when the business created it: only
# holders block others, sign in and bring anyone into their contact. Unproven Self-Service claims
# may be many per identifier; whoever proves one first owns the identifier (identities.proof).
HOLDS_SQL = "verified_at IS NOT NULL OR origin = 'BACK_OFFICE'"


class Identity(Base):
    """An email or phone a contact signs in with; `identifier` is the canonical matching form."""

    __tablename__ = "identities"
    __table_args__ = (
        Index("ix_identities_lookup", "tenant_id", "mode", "provider", "identifier"),
        Index(
            "uq_identities_holder",
            "tenant_id",
            "mode",
            "provider",
            "identifier",
            unique=True,
            sqlite_where=text(HOLDS_SQL),
            postgresql_where=text(HOLDS_SQL),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    mode: Mapped[str] = mapped_column(String(10))
    contact_pk: Mapped[int] = mapped_column(
        ForeignKey("contacts.pk", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(10))  # EMAIL | PHONE
    identifier: Mapped[str] = mapped_column(String(254))  # lower-cased email or E.164
    display: Mapped[str] = mapped_column(String(254))
    country_code: Mapped[str | None] = mapped_column(String(3), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Rows from before this column existed are the conservative BACK_OFFICE (they hold).
    origin: Mapped[str] = mapped_column(
        String(20), default=IdentityOrigin.BACK_OFFICE, server_default="BACK_OFFICE"
    )
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # NIST SP 800-63B throttling: consecutive failures across codes; a resend does not reset it.
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OtpChallenge(Base):
    """One sent code (`auth_otp`); only an HMAC of the code bound to this id is kept."""

    __tablename__ = "otp_challenges"
    __table_args__ = (
        Index("ix_otp_challenges_identity_created", "identity_id", "created_at"),
        # Reset and verification tokens are found by their keyed hash (see identities.service).
        Index("ix_otp_challenges_code_hmac", "code_hmac"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    mode: Mapped[str] = mapped_column(String(10))
    application_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    identity_id: Mapped[str] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(30))  # REGISTER | SIGN_IN | ...
    channel: Mapped[str] = mapped_column(String(10))  # SMS | EMAIL
    code_hmac: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # A keyed hash of the API key and client address that asked for the code: one client may use
    # only a share of an identity's hourly sends (see identities.otp).
    client_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class FailureCounter(Base):
    """Consecutive failures of one subject: a contact's password, an unknown identifier, or a
    client guessing at one identity. `subject` is a keyed hash, so no identifier is kept here."""

    __tablename__ = "failure_counters"

    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OtpDecoy(Base):
    """What a code request or a reset for an unknown identifier writes: a challenge that can never
    validate, so that an unknown identifier is answered, counted and throttled like a known one."""

    __tablename__ = "otp_decoys"
    __table_args__ = (Index("ix_otp_decoys_subject_created", "subject", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    mode: Mapped[str] = mapped_column(String(10))
    application_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    subject: Mapped[str] = mapped_column(String(64))  # keyed hash of the identifier
    purpose: Mapped[str] = mapped_column(String(30))
    client_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Session(Base):
    """A signed-in session: one refresh-token family rotated on every use (OAuth 2.0 Security BCP)."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_contact", "contact_pk", "revoked_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    mode: Mapped[str] = mapped_column(String(10))
    application_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    contact_pk: Mapped[int] = mapped_column(ForeignKey("contacts.pk", ondelete="CASCADE"))
    refresh_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The token just replaced, honoured for the grace window; its successor is kept encrypted
    # only so a concurrent refresh with the old token can be answered with the same new token.
    previous_refresh_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    current_refresh_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime())
    idle_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    absolute_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(400), nullable=True)
    ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RetiredRefreshToken(Base):
    """Hashes of refresh tokens older than the grace window: presenting one is reuse (theft)."""

    __tablename__ = "retired_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    retired_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SigningKey(Base):
    """A JWT signing key of the deployment; the private half is encrypted with the server secret."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, str]] = mapped_column(PortableJSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when a newer key takes over signing; published until its last token has expired.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
