"""Back-Office bulk import: upload a CSV of contacts as a job, then follow it (secret key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from crm.api.backoffice import actor_of
from crm.api.deps import RuntimeDep, SecretKey, SessionDep
from crm.api.responses import error_responses
from crm.clock import epoch
from crm.contacts.import_reader import ImportFileError
from crm.imports import jobs
from crm.imports.errors import ImportFileInvalid, ImportJobNotFound, ImportOptionsInvalid
from crm.imports.models import ImportJob
from crm.paging import Paging
from crm.security.legacy_hashes import FirebaseScrypt

router = APIRouter(tags=["Back-Office"])

PATH = "/contacts/imports"
MAX_ERRORS_PAGE = 100
_CSV_TYPES = ("text/csv", "application/csv", "text/plain", "application/octet-stream")


class ImportJobRead(BaseModel):
    id: str
    status: str = Field(description="`QUEUED`, `RUNNING`, `SUCCEEDED` or `FAILED`.")
    size_bytes: int
    rows: int = Field(description="Rows read so far (created + skipped + rejected).")
    created: int
    skipped: int = Field(description="Rows whose id or code already existed.")
    rejected: int
    error: str | None = Field(None, description="Why a FAILED job stopped (not a row's error).")
    created_date: int
    started_date: int | None = None
    finished_date: int | None = None


class ImportRowError(BaseModel):
    line: int
    reason: str = Field(description="A stable code, a colon and what is wrong.")


class ImportJobDetail(ImportJobRead):
    errors: list[ImportRowError] = Field(description="This page of rejected rows, by line.")
    paging: Paging


def _read(job: ImportJob) -> ImportJobRead:
    return ImportJobRead(
        id=job.id,
        status=job.status,
        size_bytes=job.size_bytes,
        rows=job.created_count + job.skipped_count + job.rejected_count,
        created=job.created_count,
        skipped=job.skipped_count,
        rejected=job.rejected_count,
        error=job.error,
        created_date=epoch(job.created_at) or 0,
        started_date=epoch(job.started_at),
        finished_date=epoch(job.finished_at),
    )


def _firebase(
    signer_key: str | None, salt_separator: str | None, rounds: int | None, mem_cost: int | None
) -> FirebaseScrypt | None:
    if signer_key is None:
        if salt_separator or rounds or mem_cost:
            raise ImportOptionsInvalid("The Firebase parameters need X-Firebase-Signer-Key.")
        return None
    try:
        return FirebaseScrypt.from_base64(
            signer_key=signer_key,
            salt_separator=salt_separator or "Bw==",
            rounds=8 if rounds is None else rounds,
            mem_cost=14 if mem_cost is None else mem_cost,
        )
    except ValueError as exc:
        raise ImportOptionsInvalid(str(exc)) from None


@router.post(
    PATH,
    status_code=202,
    response_model=ImportJobRead,
    responses=error_responses(401, 403),
    summary="Import contacts from a CSV file, as a job",
    openapi_extra={
        "requestBody": {
            "required": True,
            # Declared as bytes (what generated clients can send); text/csv is accepted too.
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def create_import(
    request: Request,
    caller: SecretKey,
    session: SessionDep,
    runtime: RuntimeDep,
    batch_size: int = Query(1000, ge=1, le=10_000, description="Rows per transaction."),
    x_firebase_signer_key: Annotated[str | None, Header()] = None,
    x_firebase_salt_separator: Annotated[str | None, Header()] = None,
    x_firebase_rounds: Annotated[int | None, Header()] = None,
    x_firebase_mem_cost: Annotated[int | None, Header()] = None,
) -> JSONResponse:
    """The body is the file `crm contacts import` reads (UTF-8 CSV sent as `text/csv` or
    `application/octet-stream`, the header naming the
    columns, `password_hash` included), at most `CRM_IMPORT_MAX_BYTES`. The file is checked as
    a whole (encoding, header) and stored with the job before the 202; the rows are imported by
    a worker in batches, with the same rules and per-row errors as the command line. Firebase
    scrypt hashes need the project's parameters in the `X-Firebase-*` headers."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type not in _CSV_TYPES:
        raise ImportFileInvalid("Send the file as text/csv.")
    firebase = _firebase(
        x_firebase_signer_key, x_firebase_salt_separator, x_firebase_rounds, x_firebase_mem_cost
    )
    content = await request.body()
    try:
        jobs.check_file(content)
    except ImportFileError as exc:
        raise ImportFileInvalid(str(exc)) from None
    job = await jobs.create_job(
        session,
        runtime.clock,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        actor=actor_of(caller),
        content=content,
        options=jobs.options_of(firebase, batch_size),
    )
    answer = _read(job).model_dump(mode="json")
    # Committed before the answer: a 202 means the file is stored and will be imported.
    await session.commit()
    return JSONResponse(
        answer, status_code=202, headers={"Location": f"{request.url.path}/{job.id}"}
    )


@router.get(
    PATH + "/{job_id}",
    response_model=ImportJobDetail,
    responses=error_responses(401, 403, 404),
    summary="An import job: status, counts and rejected rows (paged)",
)
async def get_import(
    job_id: str,
    caller: SecretKey,
    session: SessionDep,
    page: int = Query(1, ge=1, le=1_000_000, description="1-based page of rejected rows."),
    size: int = Query(50, ge=1, le=MAX_ERRORS_PAGE, description="Rejected rows per page."),
) -> ImportJobDetail:
    job = await jobs.get_job(session, tenant_id=caller.tenant_id, mode=caller.mode, job_id=job_id)
    if job is None:
        raise ImportJobNotFound()
    errors = await jobs.list_errors(session, job, page=page, size=size)
    return ImportJobDetail(
        **_read(job).model_dump(),
        errors=[ImportRowError(line=e.line, reason=e.reason) for e in errors.errors],
        paging=Paging(page=page, size=size, total=job.rejected_count, has_more=errors.has_more),
    )
