"""The table holding the server-secret check value of a database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm.db import Base, UTCDateTime


class SecretCheck(Base):
    """A known value encrypted with the server secret the database is written with."""

    __tablename__ = "secret_checks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
