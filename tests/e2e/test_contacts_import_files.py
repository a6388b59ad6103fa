"""`crm contacts import` on malformed files: each gives a clear message naming the line, a
non-zero exit, and no contact from a bad row (on both databases)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def crm(url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["CRM_DATABASE_URL"] = url
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "crm", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tenant(database_url: str, tmp_path: Path) -> str:
    result = crm(database_url, tmp_path, "tenants", "create", "--name", "Files", "--json")
    assert result.returncode == 0, result.stderr
    tenant_id: str = json.loads(result.stdout)["id"]
    return tenant_id


def run_import(
    url: str, tmp_path: Path, tenant: str, content: bytes, *extra: str
) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "in.csv"
    source.write_bytes(content)
    return crm(
        url,
        tmp_path,
        "contacts",
        "import",
        str(source),
        "--tenant",
        tenant,
        "--mode",
        "live",
        *extra,
    )


def codes(url: str, tmp_path: Path, tenant: str) -> list[str]:
    result = crm(url, tmp_path, "contacts", "export", "--tenant", tenant, "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    assert "live-mode" in result.stderr
    return sorted(json.loads(line)["code"] for line in result.stdout.splitlines())


def assert_plain(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout


def test_semicolons_are_detected_and_imported(
    database_url: str, tmp_path: Path, tenant: str
) -> None:
    content = "id;code;first_name;last_name;email_address\ns-1;S1;Ann;Lee;ann@example.com\n"
    content += 's-2;S2;"Bob; Jr";Ray;bob@example.com\n'
    result = run_import(database_url, tmp_path, tenant, content.encode())
    assert result.returncode == 0, result.stderr
    assert "created 2, skipped 0 (already present), rejected 0" in result.stdout
    # Not on a terminal: a summary line with rows, seconds and rate.
    assert "imported: 2 rows in" in result.stderr and "rows/s" in result.stderr
    assert codes(database_url, tmp_path, tenant) == ["S1", "S2"]
    again = run_import(database_url, tmp_path, tenant, content.encode())
    assert "created 0, skipped 2" in again.stdout
    assert codes(database_url, tmp_path, tenant) == ["S1", "S2"]


def test_given_delimiter_is_used(database_url: str, tmp_path: Path, tenant: str) -> None:
    content = b"id|code|first_name\np-1|P1|Ann\n"
    result = run_import(database_url, tmp_path, tenant, content, "--delimiter", "|")
    assert result.returncode == 0, result.stderr
    assert codes(database_url, tmp_path, tenant) == ["P1"]


def test_ragged_rows_are_rejected_with_their_line(
    database_url: str, tmp_path: Path, tenant: str
) -> None:
    content = b"id,code,first_name\nr-1,R1,Ann\nr-2,R2\nr-3,R3,Cat,extra\nr-4,R4,Dan\n"
    result = run_import(database_url, tmp_path, tenant, content)
    assert_plain(result)
    assert result.returncode == 1
    assert "created 2, skipped 0 (already present), rejected 2" in result.stdout
    assert "line 3 has 2 cells where the header has 3" in result.stderr
    assert "line 4 has 4 cells where the header has 3" in result.stderr
    assert codes(database_url, tmp_path, tenant) == ["R1", "R4"]


def test_an_unclosed_quote_is_rejected_not_joined(
    database_url: str, tmp_path: Path, tenant: str
) -> None:
    content = b'id,code,first_name\nq-1,Q1,Ann\nq-2,Q2,"Bob\nq-3,Q3,Cat\n'
    result = run_import(database_url, tmp_path, tenant, content)
    assert_plain(result)
    assert result.returncode == 1
    assert "created 1" in result.stdout
    assert "lines 3-4" in result.stderr
    assert codes(database_url, tmp_path, tenant) == ["Q1"]


def test_latin1_needs_encoding_and_imports_with_it(
    database_url: str, tmp_path: Path, tenant: str
) -> None:
    content = "id,code,first_name\nl-1,L1,Ann\nl-2,L2,Hélène\n".encode("latin-1")
    result = run_import(database_url, tmp_path, tenant, content)
    assert_plain(result)
    assert result.returncode == 1
    assert "line 3: byte 0xE9 is not valid utf-8" in result.stderr
    assert "--encoding" in result.stderr
    # The file is refused before anything is written.
    assert codes(database_url, tmp_path, tenant) == []

    result = run_import(database_url, tmp_path, tenant, content, "--encoding", "latin-1")
    assert result.returncode == 0, result.stderr
    exported = crm(
        database_url, tmp_path, "contacts", "export", "--tenant", tenant, "--format", "jsonl"
    )
    names = sorted(json.loads(line)["first_name"] for line in exported.stdout.splitlines())
    assert names == ["Ann", "Hélène"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"l-1,L1,Ann\nl-2,L2,Bob\n", "line 1: the header names no known column"),
        (b"", "line 1: the file has no header row"),
        (b"id,code,first_name\n", "the file has a header but no rows"),
        (b"id,code,id\nx,y,z\n", "line 1: the header repeats id"),
    ],
)
def test_no_header_is_a_clear_error(
    database_url: str, tmp_path: Path, tenant: str, content: bytes, message: str
) -> None:
    result = run_import(database_url, tmp_path, tenant, content)
    assert_plain(result)
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3
    assert codes(database_url, tmp_path, tenant) == []


def test_help_lists_the_columns(tmp_path: Path) -> None:
    result = crm(f"sqlite:///{tmp_path}/none.db", tmp_path, "contacts", "import", "--help")
    assert result.returncode == 0
    for column in ("email_address", "phone_country_code", "date_of_birth", "custom_fields"):
        assert column in result.stdout
