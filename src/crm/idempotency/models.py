"""The table of Idempotency-Keys: reserved while their request runs, then its remembered answer."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm.db import Base, UTCDateTime


class RecordState(StrEnum):
    # PENDING: a request holds the key under a lease; DONE: its answer is remembered.
    PENDING = "PENDING"
    DONE = "DONE"


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    mode: Mapped[str] = mapped_column(String(10), primary_key=True)
    # Who made the request (an HMAC of the API key's id, or of the session for signed-in
    # calls): another key of the tenant has keys of its own and never sees this answer.
    caller: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The same key may be reused on different operations; the scope is "METHOD path-template".
    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # An HMAC of the client address when the key alone does not name a caller (public keys
    # are public); None when the caller is a secret.
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # HMAC, not a bare digest: the body can hold a code or a password.
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10))
    # Fences the answer: only the request holding this reservation may fill it in.
    owner: Mapped[str] = mapped_column(String(32))
    lease_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Requests with this key that did not match it (another body): after one, an answer that
    # holds tokens is never replayed again.
    refused: Mapped[int] = mapped_column(Integer, default=0)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
