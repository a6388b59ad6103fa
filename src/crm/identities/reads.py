"""How an identity and a session read on the Back-Office wire and in the console."""

from __future__ import annotations

from pydantic import BaseModel, Field

from crm.clock import epoch
from crm.identities.models import Identity, Session


class IdentityRead(BaseModel):
    id: str
    provider: str
    value: str = Field(description="The email as written, or the phone in E.164.")
    country_code: str | None = None
    is_verified: bool
    has_password: bool
    is_locked: bool
    created_date: int


def identity_read(identity: Identity) -> IdentityRead:
    return IdentityRead(
        id=identity.id,
        provider=identity.provider,
        value=identity.display,
        country_code=identity.country_code,
        is_verified=identity.verified_at is not None,
        has_password=identity.password_hash is not None,
        is_locked=identity.locked_at is not None,
        created_date=epoch(identity.created_at) or 0,
    )


class SessionRead(BaseModel):
    id: str
    application_id: str | None
    created_date: int
    last_used_date: int
    expires_date: int = Field(description="When it ends unless used again (epoch seconds).")
    user_agent: str | None = None
    ip_address: str | None = None


def session_read(row: Session) -> SessionRead:
    return SessionRead(
        id=row.id,
        application_id=row.application_id,
        created_date=epoch(row.created_at) or 0,
        last_used_date=epoch(row.last_used_at) or 0,
        expires_date=epoch(min(row.idle_expires_at, row.absolute_expires_at)) or 0,
        user_agent=row.user_agent,
        ip_address=row.ip_address,
    )


class SessionsRevoked(BaseModel):
    revoked: int
