"""Tables of the Back-Office import jobs: the uploaded file with its progress, and row errors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm.db import Base, PortableJSON, UTCDateTime


class ImportJob(Base):
    """One uploaded file and how far its import got.

    The file is committed with the job before the answer (so a crash loses nothing), and
    `next_line` is advanced in each batch's own transaction (so a re-run repeats nothing). The
    file is emptied when the job ends: it holds personal data and password hashes.
    """

    __tablename__ = "import_jobs"
    __table_args__ = (Index("ix_import_jobs_status_lease", "status", "lease_until"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(10))
    actor: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20))  # QUEUED | RUNNING | SUCCEEDED | FAILED
    # Deferred: a status read must not load a file of up to CRM_IMPORT_MAX_BYTES.
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    options: Mapped[dict[str, Any]] = mapped_column(PortableJSON)
    # The last line whose batch committed (0: none); a resumed run starts after it.
    next_line: Mapped[int] = mapped_column(Integer, default=0)
    rows_seen: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0)
    # Each claim gets a new number: a worker whose lease ran out cannot write for the next one.
    claim: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ImportJobError(Base):
    """A rejected row of a job: its line and the reason (a stable code first, never a hash)."""

    __tablename__ = "import_job_errors"
    __table_args__ = (Index("ix_import_job_errors_job_line", "job_id", "line"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("import_jobs.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
