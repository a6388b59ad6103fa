"""Back-Office bulk import: upload a CSV or JSON-lines file of contacts as a job, then follow it
(secret key)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from fastapi.types import DecoratedCallable
from pydantic import BaseModel, Field

from crm.api.backoffice import actor_of
from crm.api.deps import RuntimeDep, SecretKey, SessionDep
from crm.api.responses import error_responses
from crm.clock import epoch
from crm.contacts.import_reader import ImportFileError
from crm.imports import jobs
from crm.imports.errors import ImportFileInvalid, ImportJobNotFound, ImportOptionsInvalid
from crm.imports.formats import ImportFormat
from crm.imports.models import ImportJob
from crm.paging import Paging
from crm.security.legacy_hashes import FirebaseScrypt

router = APIRouter(tags=["Back-Office"])

PATH = "/contacts/imports"
# The same operation under the singular path some integrations are written against.
ALIAS_PATH = "/contacts/import"
PATHS = (PATH, ALIAS_PATH)
MAX_ERRORS_PAGE = 100
_TYPES = {
    "text/csv": ImportFormat.CSV,
    "application/csv": ImportFormat.CSV,
    "application/x-ndjson": ImportFormat.JSONL,
    "application/jsonl": ImportFormat.JSONL,
}
# Types that say nothing of the format: the `format` parameter says it (CSV when absent).
_GENERIC_TYPES = ("text/plain", "application/octet-stream")


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


def _format(content_type: str, given: ImportFormat | None) -> ImportFormat:
    """The file's format: from its media type, or from `format` for a generic type."""
    if content_type in _GENERIC_TYPES:
        return given or ImportFormat.CSV
    named = _TYPES.get(content_type)
    if named is None:
        raise ImportFileInvalid(
            "Send the file as text/csv or application/x-ndjson (JSON lines), or as "
            "application/octet-stream with format=csv or format=jsonl."
        )
    if given is not None and given is not named:
        raise ImportOptionsInvalid(f"format={given.value} contradicts Content-Type {content_type}.")
    return named


_DESCRIPTION = """The body is the file `crm contacts import` reads, at most `CRM_IMPORT_MAX_BYTES`,
in UTF-8:

- **CSV** (`text/csv`): the header names the columns, `password_hash` included.
- **JSON lines** (`application/x-ndjson` or `application/jsonl`): one JSON object per line whose
  keys are the CSV's column names; scalar fields are strings (the consent flags may be
  `true`/`false`), `phones`, `addresses`, `custom_fields` and `tags` are arrays, `demographics`
  an object, `null` an absent field. Blank lines are skipped. A line that is not valid JSON, not
  an object, has an unknown or repeated key, a value of the wrong type or no value at all is
  rejected by line with a code (`BAD_JSON`, `NOT_AN_OBJECT`, `UNKNOWN_KEY`, `DUPLICATE_KEY`,
  `WRONG_TYPE`, `EMPTY_OBJECT`, `NOT_IMPORTABLE`); `crm contacts export --format jsonl` output
  reads back.
- `application/octet-stream` or `text/plain` with `format=csv` (the default) or `format=jsonl`.

The file is checked as a whole (encoding, CSV header or first JSON line) and stored with the job
before the 202; the rows are imported by a worker in batches, with the same rules and per-row
errors as the command line. A job whose every row is rejected ends `FAILED`. Firebase scrypt
hashes need the project's parameters in the `X-Firebase-*` headers.

`POST /backoffice/v1/contacts/import` is this same operation under a second path
(`createContactImportAlias`); either way the job is read at
`GET /backoffice/v1/contacts/imports/{job_id}`, the `Location` of the answer."""


def _create_route(path: str, summary: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    return router.post(
        path,
        status_code=202,
        response_model=ImportJobRead,
        responses=error_responses(401, 403),
        summary=summary,
        description=_DESCRIPTION,
        # Distinct route names: FastAPI's generated ids must not collide (OPERATION_IDS names them).
        name=f"create_import{'' if path == PATH else '_alias'}",
        openapi_extra={
            "requestBody": {
                "required": True,
                # Declared as bytes (what generated clients can send, with `format`); text/csv
                # and the JSON-lines types are accepted too.
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        },
    )


@_create_route(
    ALIAS_PATH, "Import contacts from CSV or JSON lines (same as POST /contacts/imports)"
)
@_create_route(PATH, "Import contacts from a CSV or JSON-lines file, as a job")
async def create_import(
    request: Request,
    caller: SecretKey,
    session: SessionDep,
    runtime: RuntimeDep,
    batch_size: int = Query(1000, ge=1, le=10_000, description="Rows per transaction."),
    fmt: ImportFormat | None = Query(
        None,
        alias="format",
        description="`csv` or `jsonl`, for a body sent as application/octet-stream or "
        "text/plain; it must agree with a specific Content-Type.",
    ),
    x_firebase_signer_key: Annotated[str | None, Header()] = None,
    x_firebase_salt_separator: Annotated[str | None, Header()] = None,
    x_firebase_rounds: Annotated[int | None, Header()] = None,
    x_firebase_mem_cost: Annotated[int | None, Header()] = None,
) -> JSONResponse:
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    file_format = _format(content_type, fmt)
    firebase = _firebase(
        x_firebase_signer_key, x_firebase_salt_separator, x_firebase_rounds, x_firebase_mem_cost
    )
    content = await request.body()
    try:
        jobs.check_file(content, file_format)
    except ImportFileError as exc:
        raise ImportFileInvalid(str(exc)) from None
    job = await jobs.create_job(
        session,
        runtime.clock,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        actor=actor_of(caller),
        content=content,
        options=jobs.options_of(firebase, batch_size, file_format),
    )
    answer = _read(job).model_dump(mode="json")
    # Committed before the answer: a 202 means the file is stored and will be imported.
    await session.commit()
    # The job's one address, whichever path took the file.
    location = request.url.path.removesuffix(ALIAS_PATH).removesuffix(PATH) + f"{PATH}/{job.id}"
    return JSONResponse(answer, status_code=202, headers={"Location": location})


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
