"""JSON lines through the Back-Office import jobs, on both paths: rows, rejections by line, refusals."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from sqlalchemy import func, select

from crm.contacts import exporter
from crm.imports.models import ImportJob
from crm.runtime import Runtime
from crm.tenants import service as tenants
from crm.tenants.schemas import CreatedTenant
from tests.api.test_backoffice_imports import _drain

URL = "/backoffice/v1/contacts/imports"
ALIAS = "/backoffice/v1/contacts/import"
NDJSON = {"Content-Type": "application/x-ndjson"}


def _headers(tenant: CreatedTenant, mode: str = "test", **extra: str) -> dict[str, str]:
    return {"api_key": tenant.keys[f"secret_{mode}"], **NDJSON, **extra}


def _lines(*items: Any) -> bytes:
    return "".join((i if isinstance(i, str) else json.dumps(i)) + "\n" for i in items).encode()


async def _job(client: Any, tenant: CreatedTenant, job_id: str) -> dict[str, Any]:
    got = await client.get(f"{URL}/{job_id}?size=100", headers=_headers(tenant))
    assert got.status_code == 200, got.text
    return dict(got.json())


async def test_json_lines_import_their_rows_and_reject_bad_lines_by_line(
    client: Any, runtime: Runtime, tenant: CreatedTenant
) -> None:
    tag = "Jl" + secrets.token_hex(3)
    ann = f"jl-{secrets.token_hex(4)}"
    content = _lines(
        {
            "id": ann,
            "first_name": tag,
            "last_name": "Lee",
            "email_address": f"{ann}@example.com",
            "phone": "99123456",
            "phone_country_code": "CYP",
            "tags": ["vip", "b2c"],
            "demographics": {"gender": "FEMALE"},
            "email_opt_out": True,
            "company_profile": None,
        },
        "",  # line 2: blank, skipped
        {"id": f"{ann}-f", "first_name": tag, "last_name": "=SUM(A1)", "sms_opt_out": "false"},
        "[1, 2]",  # 4
        '{"first_name": "x"',  # 5
        {"first_name": tag, "nickname": "Al"},  # 6
        {"first_name": tag, "phone": 99123456},  # 7
        {"first_name": tag, "tags": "a;b"},  # 8
        {"first_name": None, "email_address": ""},  # 9
        '{"first_name": "a", "first_name": "b"}',  # 10
        {"first_name": tag, "email_address": "not-an-email"},  # 11: the API's own rule
        {"first_name": tag, "loyalty_identifiers": [{"identifier": "L1"}]},  # 12
        {"first_name": tag, "created_date": 1700000000, "avatar_url": None},  # 13
    )
    posted = await client.post(ALIAS, content=content, headers=_headers(tenant))
    assert posted.status_code == 202, posted.text
    job_id = posted.json()["id"]
    # The job's one address, whichever path took the file.
    assert posted.headers["location"].endswith(f"{URL}/{job_id}")
    await _drain(runtime)
    job = await _job(client, tenant, job_id)
    assert job["status"] == "SUCCEEDED", job
    assert (job["rows"], job["created"], job["rejected"]) == (12, 3, 9)
    codes = {e["line"]: e["reason"].split(":")[0] for e in job["errors"]}
    assert codes == {
        4: "NOT_AN_OBJECT",
        5: "BAD_JSON",
        6: "UNKNOWN_KEY",
        7: "WRONG_TYPE",
        8: "WRONG_TYPE",
        9: "EMPTY_OBJECT",
        10: "DUPLICATE_KEY",
        11: "INVALID_EMAIL",
        12: "NOT_IMPORTABLE",
    }
    assert all(f"line {e['line']}" in e["reason"] for e in job["errors"] if e["line"] != 11)

    read = await client.get(f"/backoffice/v1/contacts/{ann}", headers=_headers(tenant))
    assert read.status_code == 200, read.text
    contact = read.json()
    assert contact["phones"][0]["number"] == "+35799123456"
    assert (contact["tags"], contact["demographics"]["gender"]) == (["vip", "b2c"], "FEMALE")
    assert (contact["email_opt_out"], contact["sms_opt_out"]) == (True, False)
    formula = await client.get(f"/backoffice/v1/contacts/{ann}-f", headers=_headers(tenant))
    # Text is kept as given: no CSV formula escaping is added or taken off.
    assert formula.json()["last_name"] == "=SUM(A1)", formula.text

    # What `crm contacts export --format jsonl` writes imports into another tenant as is.
    async with runtime.sessions() as session:
        exported = [
            exporter.jsonl_line(c)
            async for c in exporter.export_contacts(session, tenant_id=tenant.id, mode="test")
            if c.first_name == tag
        ]
        other = await tenants.create_tenant(session, runtime.clock, "JSON lines copy")
        await session.commit()
    assert len(exported) == 3
    again = await client.post(
        URL, content="".join(exported).encode(), headers=_headers(other, "live")
    )
    assert again.status_code == 202, again.text
    await _drain(runtime)
    copied = await client.get(f"/backoffice/v1/contacts/{ann}", headers=_headers(other, "live"))
    assert copied.status_code == 200, copied.text
    assert {
        k: v
        for k, v in copied.json().items()
        if k not in ("phones", "created_date", "updated_date")
    } == {k: v for k, v in contact.items() if k not in ("phones", "created_date", "updated_date")}


async def test_a_job_whose_every_line_is_rejected_fails(
    client: Any, runtime: Runtime, tenant: CreatedTenant
) -> None:
    content = _lines({"first_name": "A", "email_address": "nope"}, {"first_name": 1})
    headers = _headers(tenant, **{"Content-Type": "application/octet-stream"})
    posted = await client.post(f"{URL}?format=jsonl", content=content, headers=headers)
    assert posted.status_code == 202, posted.text
    await _drain(runtime)
    job = await _job(client, tenant, posted.json()["id"])
    assert (job["status"], job["created"], job["rejected"]) == ("FAILED", 0, 2)
    assert "no row could be imported" in job["error"]
    assert [e["line"] for e in job["errors"]] == [1, 2]


async def test_a_json_lines_job_is_its_tenants_and_modes_only(
    client: Any, runtime: Runtime, tenant: CreatedTenant
) -> None:
    async with runtime.sessions() as session:
        other = await tenants.create_tenant(session, runtime.clock, "Other JSON lines")
        await session.commit()
    posted = await client.post(
        ALIAS, content=_lines({"first_name": "Iso"}), headers=_headers(other)
    )
    job_id = posted.json()["id"]
    assert (await client.get(f"{URL}/{job_id}", headers=_headers(other))).status_code == 200
    for headers in (_headers(tenant), _headers(other, "live")):
        got = await client.get(f"{URL}/{job_id}", headers=headers)
        assert got.status_code == 404
        assert got.json()["code"] == "IMPORT_JOB_NOT_FOUND"
    await _drain(runtime)


@pytest.mark.parametrize(
    ("content", "content_type", "query", "code"),
    [
        # Not JSON lines at all: a CSV, a JSON array, an object naming nothing the import knows.
        (b"first_name,last_name\nA,B\n", "application/x-ndjson", "", "IMPORT_FILE_INVALID"),
        (b'[{"first_name": "A"}]\n', "application/jsonl", "", "IMPORT_FILE_INVALID"),
        (b'{"name": "A"}\n', "application/x-ndjson", "", "IMPORT_FILE_INVALID"),
        (b"\n  \n", "application/x-ndjson", "", "IMPORT_FILE_INVALID"),
        # JSON is UTF-8: a file in another encoding is refused whole, naming the line.
        (b'{"first_name": "A"}\n{"first_name": "\xe9"}\n', "application/x-ndjson", "", "line 2"),
        (b'{"first_name": "A"}\n', "application/json", "", "IMPORT_FILE_INVALID"),
        (b'{"first_name": "A"}\n', "text/csv", "?format=jsonl", "IMPORT_OPTIONS_INVALID"),
        (b'{"first_name": "A"}\n', "application/octet-stream", "?format=xml", "INVALID_REQUEST"),
        # Generic bytes default to CSV, whose header this is not.
        (b'{"first_name": "A"}\n', "application/octet-stream", "", "IMPORT_FILE_INVALID"),
    ],
)
async def test_a_json_lines_file_that_cannot_be_imported_is_refused_and_nothing_stored(
    client: Any,
    runtime: Runtime,
    tenant: CreatedTenant,
    content: bytes,
    content_type: str,
    query: str,
    code: str,
) -> None:
    headers = _headers(tenant, **{"Content-Type": content_type})
    answer = await client.post(ALIAS + query, content=content, headers=headers)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    if code.startswith("line"):
        assert body["code"] == "IMPORT_FILE_INVALID" and code in answer.text
    else:
        assert body["code"] == code
    async with runtime.sessions() as session:
        stored = await session.scalar(
            select(func.count()).select_from(ImportJob).where(ImportJob.tenant_id == tenant.id)
        )
    assert stored == 0
