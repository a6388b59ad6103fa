"""Back-Office import jobs: queue an uploaded file, run it in batches, resume after a crash.

A job and its file are committed before the API answers 202. A worker claims a job with a
lease (a conditional UPDATE, so one worker at a time on both databases) and runs the same
pipeline as `crm contacts import`; each batch's transaction also records the job's progress
(`next_line`, counts, rejected rows) under the worker's claim number. A worker that dies leaves
the job RUNNING with a lease that runs out; the next claim resumes after `next_line`, so every
committed batch counts once and no row is written twice. A worker that lost its lease (it was
too slow) cannot write: its batch's progress update matches no row and the batch rolls back.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import undefer

from crm.clock import Clock
from crm.contacts.import_reader import BadRow, ImportFileError, Row
from crm.contacts.importer import BatchResult
from crm.ids import uuid7
from crm.imports import formats, pipeline
from crm.imports.formats import ImportFormat
from crm.imports.models import ImportJob, ImportJobError
from crm.security.legacy_hashes import FirebaseScrypt
from crm.unit_of_work import session_scope

log = logging.getLogger("crm.imports")

QUEUED, RUNNING, SUCCEEDED, FAILED = "QUEUED", "RUNNING", "SUCCEEDED", "FAILED"
ENCODING = "utf-8"
# A job that keeps failing (not a row: the job itself) stops after this many claims.
MAX_CLAIMS = 5


class LeaseLost(Exception):
    """Another worker holds the job now: this worker's batch must not commit."""


def check_file(content: bytes, fmt: ImportFormat = ImportFormat.CSV) -> None:
    """Refuse, before anything is stored, a file that cannot be imported as a whole."""
    formats.check_file(content, fmt, encoding=ENCODING)


def options_of(
    firebase: FirebaseScrypt | None, batch_size: int, fmt: ImportFormat = ImportFormat.CSV
) -> dict[str, Any]:
    # Kept with the job (a JSON column: no schema change); a job without one is a CSV file.
    if firebase is None:
        return {"batch_size": batch_size, "format": fmt.value}
    return {
        "batch_size": batch_size,
        "format": fmt.value,
        "firebase": {
            "signer_key": firebase.signer_key.hex(),
            "salt_separator": firebase.salt_separator.hex(),
            "rounds": firebase.rounds,
            "mem_cost": firebase.mem_cost,
        },
    }


def _firebase(options: dict[str, Any]) -> FirebaseScrypt | None:
    given = options.get("firebase")
    if not given:
        return None
    return FirebaseScrypt(
        bytes.fromhex(given["signer_key"]),
        bytes.fromhex(given["salt_separator"]),
        int(given["rounds"]),
        int(given["mem_cost"]),
    )


async def create_job(
    session: AsyncSession,
    clock: Clock,
    *,
    tenant_id: str,
    mode: str,
    actor: str,
    content: bytes,
    options: dict[str, Any],
) -> ImportJob:
    """Queue a file checked with `check_file`; the caller commits before answering."""
    job = ImportJob(
        id=uuid7(),
        tenant_id=tenant_id,
        mode=mode,
        actor=actor[:80],
        status=QUEUED,
        content=content,
        size_bytes=len(content),
        options=options,
        next_line=0,
        rows_seen=0,
        created_count=0,
        skipped_count=0,
        rejected_count=0,
        claim=0,
        created_at=clock.now(),
    )
    session.add(job)
    await session.flush()
    return job


async def get_job(
    session: AsyncSession, *, tenant_id: str, mode: str, job_id: str
) -> ImportJob | None:
    """A job of this tenant and mode (another tenant's or mode's id is no job at all)."""
    if len(job_id) > 36:
        return None
    return await session.scalar(
        select(ImportJob).where(
            ImportJob.id == job_id, ImportJob.tenant_id == tenant_id, ImportJob.mode == mode
        )
    )


@dataclass(frozen=True, slots=True)
class ErrorPage:
    errors: list[ImportJobError]
    has_more: bool


async def list_errors(session: AsyncSession, job: ImportJob, *, page: int, size: int) -> ErrorPage:
    rows = list(
        await session.scalars(
            select(ImportJobError)
            .where(ImportJobError.job_id == job.id)
            .order_by(ImportJobError.line, ImportJobError.pk)
            .offset((page - 1) * size)
            .limit(size + 1)
        )
    )
    return ErrorPage(rows[:size], len(rows) > size)


async def claim_next(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, *, lease_seconds: float
) -> tuple[str, int] | None:
    """Claim the oldest queued job, or a running one whose worker's lease ran out."""
    now = clock.now()
    async with session_scope(sessions) as session:
        candidates = list(
            await session.scalars(
                select(ImportJob.id)
                .where(
                    or_(
                        ImportJob.status == QUEUED,
                        (ImportJob.status == RUNNING) & (ImportJob.lease_until < now),
                    )
                )
                .order_by(ImportJob.created_at)
                .limit(5)
            )
        )
        for job_id in candidates:
            claimed = await session.execute(
                update(ImportJob)
                .where(
                    ImportJob.id == job_id,
                    or_(
                        ImportJob.status == QUEUED,
                        (ImportJob.status == RUNNING) & (ImportJob.lease_until < now),
                    ),
                )
                .values(
                    status=RUNNING,
                    claim=ImportJob.claim + 1,
                    lease_until=now + timedelta(seconds=lease_seconds),
                    started_at=func.coalesce(ImportJob.started_at, now),
                )
                .returning(ImportJob.claim)
            )
            claim = claimed.scalar_one_or_none()
            if claim is not None:
                return job_id, int(claim)
    return None


def _progress_update(
    job_id: str, claim: int, result: BatchResult, last_line: int, lease_until: Any
) -> Any:
    return (
        update(ImportJob)
        .where(ImportJob.id == job_id, ImportJob.claim == claim, ImportJob.status == RUNNING)
        .values(
            next_line=last_line,
            created_count=ImportJob.created_count + result.created,
            skipped_count=ImportJob.skipped_count + result.skipped,
            rejected_count=ImportJob.rejected_count + len(result.rejected),
            lease_until=lease_until,
        )
    )


async def run_job(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    job_id: str,
    claim: int,
    *,
    lease_seconds: float,
) -> None:
    """Run a claimed job from where it stopped; mark it SUCCEEDED or FAILED at the end."""
    async with session_scope(sessions) as session:
        job = await session.get(ImportJob, job_id, options=[undefer(ImportJob.content)])
        if job is None or job.claim != claim or job.status != RUNNING:
            return
        content, start, options = job.content, job.next_line, dict(job.options)
        opts = pipeline.Options(
            tenant_id=job.tenant_id,
            mode=job.mode,
            actor=job.actor,
            batch_size=int(options.get("batch_size", 1000)),
            firebase=_firebase(options),
        )
        too_many = claim > MAX_CLAIMS
        fmt = ImportFormat(options.get("format", ImportFormat.CSV))

    async def on_batch(session: AsyncSession, result: BatchResult, last_line: int) -> None:
        lease_until = clock.now() + timedelta(seconds=lease_seconds)
        moved = await session.execute(
            _progress_update(job_id, claim, result, last_line, lease_until)
        )
        if getattr(moved, "rowcount", 0) != 1:
            raise LeaseLost()
        if result.rejected:
            await session.execute(
                insert(ImportJobError),
                [{"job_id": job_id, "line": r.line, "reason": r.reason} for r in result.rejected],
            )

    error: str | None = "the job failed on every try" if too_many else None
    if error is None:
        try:
            reader = formats.open_reader(fmt, io.BytesIO(content), encoding=ENCODING)
            await pipeline.run(
                sessions,
                clock,
                _after(reader, start),
                opts,
                on_batch=on_batch,
                summary=pipeline.Summary(keep_rejected=False),
            )
        except LeaseLost:
            log.warning("import job %s: another worker holds it now", job_id)
            return
        except ImportFileError as exc:
            error = str(exc)
    await _finish(sessions, clock, job_id, claim, error)


def _after(rows: Iterable[Row | BadRow], start: int) -> Iterator[Row | BadRow]:
    """The reader's rows after line `start` (a resumed job skips what committed)."""
    for row in rows:
        if row.line > start:
            yield row


async def _finish(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    job_id: str,
    claim: int,
    error: str | None,
) -> None:
    async with session_scope(sessions) as session:
        if error is None:
            error = await _nothing_imported(session, job_id, claim)
        await session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.claim == claim)
            .values(
                status=FAILED if error else SUCCEEDED,
                error=error,
                content=b"",
                lease_until=None,
                finished_at=clock.now(),
                rows_seen=ImportJob.created_count
                + ImportJob.skipped_count
                + ImportJob.rejected_count,
            )
        )


async def _nothing_imported(session: AsyncSession, job_id: str, claim: int) -> str | None:
    """Why a job whose every row was rejected failed (a wrong file, not a few bad rows)."""
    counts = (
        await session.execute(
            select(
                ImportJob.created_count, ImportJob.skipped_count, ImportJob.rejected_count
            ).where(ImportJob.id == job_id, ImportJob.claim == claim)
        )
    ).one_or_none()
    if counts is None:
        return None
    created, skipped, rejected = counts
    if created or skipped or not rejected:
        return None
    return f"no row could be imported: all {rejected} rows were rejected (see the errors)"


async def run_next(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, *, lease_seconds: float
) -> bool:
    """Claim and run one job; False when there was none."""
    claimed = await claim_next(sessions, clock, lease_seconds=lease_seconds)
    if claimed is None:
        return False
    job_id, claim = claimed
    try:
        await run_job(sessions, clock, job_id, claim, lease_seconds=lease_seconds)
    except Exception:
        # Left RUNNING: its lease runs out and a later claim resumes it (up to MAX_CLAIMS).
        log.exception("import job %s failed; it will be resumed", job_id)
    return True


async def release(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, job_id: str, claim: int
) -> None:
    """Let another worker resume a job at once (this process is stopping)."""
    async with session_scope(sessions) as session:
        await session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.claim == claim, ImportJob.status == RUNNING)
            .values(lease_until=clock.now())
        )
