"""`POST /backoffice/v1/contacts/imports`: a file stored as a job, run by a worker, followed by id."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from crm.app import create_app
from crm.contacts.models import Contact
from crm.imports import jobs, pipeline
from crm.imports.models import ImportJob
from crm.imports.worker import ImportWorker
from crm.runtime import Runtime
from crm.tenants import service as tenants
from crm.tenants.schemas import CreatedTenant
from tests.support.selfservice import key
from tests.unit.test_legacy_hashes import FIREBASE_ROW

URL = "/backoffice/v1/contacts/imports"
CSV = {"Content-Type": "text/csv"}


def _secret(tenant: CreatedTenant, mode: str = "test") -> dict[str, str]:
    return {"api_key": tenant.keys[f"secret_{mode}"], **CSV}


def _file(tag: str, rows: int, *, bad: bool = True) -> bytes:
    lines = ["first_name,last_name,email_address,phone,phone_country_code"]
    for n in range(rows):
        lines.append(f"{tag},N{n},{tag}.{n}@example.com,99{n:06d},CYP")
    if bad:
        lines.append(f"{tag},Bad,not-an-email,,")
        lines.append(f"{tag},Short")
    return ("\n".join(lines) + "\n").encode()


async def _drain(runtime: Runtime, lease: float = 60) -> None:
    for _ in range(50):  # bounded: every job of this database, a few per test
        if not await jobs.run_next(runtime.sessions, runtime.clock, lease_seconds=lease):
            return
    raise AssertionError("jobs kept coming")


async def _count(runtime: Runtime, tenant: CreatedTenant, tag: str) -> int:
    async with runtime.sessions() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(Contact)
                .where(Contact.tenant_id == tenant.id, Contact.first_name == tag)
            )
            or 0
        )


async def test_an_upload_is_a_job_that_imports_with_per_row_errors(
    client: Any, runtime: Runtime, tenant: CreatedTenant
) -> None:
    tag = "Imp" + secrets.token_hex(3)
    posted = await client.post(URL, content=_file(tag, 30), headers=_secret(tenant))
    assert posted.status_code == 202, posted.text
    job = posted.json()
    assert job["status"] == "QUEUED" and job["rows"] == 0
    assert posted.headers["location"].endswith(f"{URL}/{job['id']}")
    await _drain(runtime)
    got = await client.get(f"{URL}/{job['id']}?size=1", headers=_secret(tenant))
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["status"] == "SUCCEEDED"
    assert (body["rows"], body["created"], body["skipped"], body["rejected"]) == (32, 30, 0, 2)
    assert body["errors"] == [{"line": 32, "reason": body["errors"][0]["reason"]}]
    assert body["errors"][0]["reason"].startswith("INVALID_EMAIL")
    assert body["paging"] == {"page": 1, "size": 1, "total": 2, "has_more": True}
    second = (await client.get(f"{URL}/{job['id']}?size=1&page=2", headers=_secret(tenant))).json()
    assert second["errors"][0]["line"] == 33
    assert second["errors"][0]["reason"].startswith("BAD_ROW")
    assert await _count(runtime, tenant, tag) == 30
    # The stored file is emptied once the job ends.
    async with runtime.sessions() as session:
        stored = await session.scalar(select(ImportJob.content).where(ImportJob.id == job["id"]))
        assert stored == b""


async def test_another_tenants_or_modes_job_is_not_found(
    client: Any, runtime: Runtime, tenant: CreatedTenant
) -> None:
    async with runtime.sessions() as session:
        other = await tenants.create_tenant(session, runtime.clock, "Other imports")
        await session.commit()
    posted = await client.post(URL, content=_file("X", 1), headers=_secret(other))
    job_id = posted.json()["id"]
    for headers in (_secret(tenant), _secret(other, "live")):
        got = await client.get(f"{URL}/{job_id}", headers=headers)
        assert got.status_code == 404
        assert got.json()["code"] == "IMPORT_JOB_NOT_FOUND"
    assert (await client.get(f"{URL}/{'x' * 300}", headers=_secret(other))).status_code == 404
    assert (await client.get(f"{URL}/{job_id}", headers=key(other))).status_code in (401, 403)
    refused = await client.post(URL, content=_file("X", 1), headers={**key(other), **CSV})
    assert refused.status_code in (401, 403)


@pytest.mark.parametrize(
    ("content", "headers", "code"),
    [
        # NUL bytes are refused for every route before any handler.
        ("first_name\nA\n".encode("utf-16"), CSV, "INVALID_REQUEST"),
        (b"first_name\n\xff\xfe\n", CSV, "IMPORT_FILE_INVALID"),
        (b"colour,size\nred,1\n", CSV, "IMPORT_FILE_INVALID"),
        (b"", CSV, "IMPORT_FILE_INVALID"),
        (b"first_name\nA\n", {"Content-Type": "application/json"}, "IMPORT_FILE_INVALID"),
        (b"first_name\nA\n", {**CSV, "X-Firebase-Signer-Key": "%%%"}, "IMPORT_OPTIONS_INVALID"),
        (b"first_name\nA\n", {**CSV, "X-Firebase-Rounds": "8"}, "IMPORT_OPTIONS_INVALID"),
    ],
)
async def test_a_file_that_cannot_be_imported_is_refused_and_nothing_stored(
    client: Any, runtime: Runtime, tenant: CreatedTenant, content: bytes, headers: Any, code: str
) -> None:
    answer = await client.post(
        URL, content=content, headers={"api_key": tenant.keys["secret_test"], **headers}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == code
    async with runtime.sessions() as session:
        stored = await session.scalar(
            select(func.count()).select_from(ImportJob).where(ImportJob.tenant_id == tenant.id)
        )
    assert stored == 0


async def test_the_body_limit_is_the_import_setting_for_this_route_only(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    settings = runtime.settings.model_copy(update={"import_max_bytes": 100_000})
    app = create_app(settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        big = _file("Big", 1700, bad=False)  # about 70 KB: over the 64 KiB of other routes
        assert 65_536 < len(big) < 100_000
        accepted = await client.post(URL, content=big, headers=_secret(tenant))
        assert accepted.status_code == 202, accepted.text
        # The same operation under its second path has the same limit.
        alias = await client.post(URL.rstrip("s"), content=big, headers=_secret(tenant))
        assert alias.status_code == 202, alias.text
        too_big = _file("Big", 3000, bad=False)
        refused = await client.post(URL, content=too_big, headers=_secret(tenant))
        assert refused.status_code == 413
        assert refused.json()["code"] == "PAYLOAD_TOO_LARGE"
        other_route = await client.post(
            "/backoffice/v1/contacts",
            content=b"{" + b" " * 70_000 + b"}",
            headers={"api_key": tenant.keys["secret_test"], "Content-Type": "application/json"},
        )
        assert other_route.status_code == 413
    await _drain(runtime)


async def test_a_job_interrupted_by_a_crash_resumes_after_its_last_batch(
    client: Any, runtime: Runtime, tenant: CreatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = "Crash" + secrets.token_hex(3)
    posted = await client.post(
        f"{URL}?batch_size=4", content=_file(tag, 10, bad=False), headers=_secret(tenant)
    )
    job_id = posted.json()["id"]
    real = pipeline._prepare

    def dies_on_third_batch(rows: Any, *args: Any) -> Any:
        # Known by its first line (10: after the header and two batches of 4), not by call
        # order: batches are validated in threads, which may start in any order.
        if rows[0][0] == 10:
            raise RuntimeError("the process died here")
        return real(rows, *args)

    monkeypatch.setattr(pipeline, "_prepare", dies_on_third_batch)
    # A zero lease: the crashed job is claimable again at once (normally after the lease).
    claimed = await jobs.claim_next(runtime.sessions, runtime.clock, lease_seconds=0)
    while claimed is not None and claimed[0] != job_id:  # other tests' jobs first
        await jobs.run_job(runtime.sessions, runtime.clock, *claimed, lease_seconds=0)
        claimed = await jobs.claim_next(runtime.sessions, runtime.clock, lease_seconds=0)
    assert claimed is not None
    with pytest.raises(RuntimeError):
        await jobs.run_job(runtime.sessions, runtime.clock, *claimed, lease_seconds=0)
    half = (await client.get(f"{URL}/{job_id}", headers=_secret(tenant))).json()
    assert (half["status"], half["created"]) == ("RUNNING", 8)
    assert await _count(runtime, tenant, tag) == 8
    monkeypatch.setattr(pipeline, "_prepare", real)
    await _drain(runtime, lease=0)
    done = (await client.get(f"{URL}/{job_id}", headers=_secret(tenant))).json()
    assert (done["status"], done["created"], done["rejected"]) == ("SUCCEEDED", 10, 0)
    # Rows without an id get generated ones: a re-run from the start would have made 18.
    assert await _count(runtime, tenant, tag) == 10


async def test_a_worker_that_lost_its_lease_writes_nothing(
    client: Any, runtime: Runtime, tenant: CreatedTenant
) -> None:
    tag = "Lease" + secrets.token_hex(3)
    posted = await client.post(URL, content=_file(tag, 3, bad=False), headers=_secret(tenant))
    job_id = posted.json()["id"]
    await _drain(runtime, lease=60)  # other tests' jobs
    async with runtime.sessions() as session:
        job = await session.get(ImportJob, job_id)
        assert job is not None and job.status == "SUCCEEDED"
    # A stale worker (an old claim number) cannot touch a job another claim holds, and a
    # finished job is not run again, even under its own claim.
    for claim in (0, job.claim):
        await jobs.run_job(runtime.sessions, runtime.clock, job_id, claim, lease_seconds=60)
    assert await _count(runtime, tenant, tag) == 3
    async with runtime.sessions() as session:
        again = await session.get(ImportJob, job_id)
        assert again is not None and again.status == "SUCCEEDED"


async def test_imported_firebase_hashes_sign_in_through_the_bulk_endpoint(
    client: Any, runtime: Runtime, tenant: CreatedTenant
) -> None:
    email = f"fb-{secrets.token_hex(4)}@example.com"
    content = f"email_address,password_hash\n{email},{FIREBASE_ROW}\n".encode()
    headers = {
        **_secret(tenant),
        "X-Firebase-Signer-Key": (
            "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA=="
        ),
        "X-Firebase-Salt-Separator": "Bw==",
        "X-Firebase-Rounds": "8",
        "X-Firebase-Mem-Cost": "14",
    }
    posted = await client.post(URL, content=content, headers=headers)
    assert posted.status_code == 202, posted.text
    await _drain(runtime)
    signed = await client.post(
        "/self-service/v2/contacts/authenticate",
        json={"provider": "EMAIL", "username": email, "password": "user1password"},
        headers=key(tenant),
    )
    assert signed.status_code == 200, signed.text


async def test_the_worker_loop_runs_queued_jobs_and_stops(
    client: Any, runtime: Runtime, tenant: CreatedTenant
) -> None:
    tag = "Loop" + secrets.token_hex(3)
    worker = ImportWorker(runtime.sessions, runtime.clock, lease_seconds=60, poll_seconds=0.05)
    running = asyncio.create_task(worker.run())
    try:
        posted = await client.post(URL, content=_file(tag, 5), headers=_secret(tenant))
        job_id = posted.json()["id"]
        worker.wakeup.set()
        deadline = time.monotonic() + 60
        status = ""
        while time.monotonic() < deadline:
            status = (await client.get(f"{URL}/{job_id}", headers=_secret(tenant))).json()["status"]
            if status in ("SUCCEEDED", "FAILED"):
                break
            await asyncio.sleep(0.05)
        assert status == "SUCCEEDED"
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
    assert await _count(runtime, tenant, tag) == 5
