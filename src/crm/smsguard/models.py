"""The table of SMS sent per tenant, mode and UTC day (the daily budget's counter)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from crm.db import Base, UTCDateTime


class SmsDailyCount(Base):
    """One row per tenant, mode and day: small enough to keep as a record of daily SMS volume."""

    __tablename__ = "sms_daily_counts"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    mode: Mapped[str] = mapped_column(String(10), primary_key=True)
    # Midnight UTC of the day counted.
    day: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
