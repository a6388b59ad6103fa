"""`crm tenants settings` and `sms_countries` as an operator runs them, on both databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_SECRET


def crm(
    tmp_path: Path, database_url: str, *args: str, check: bool = True, **env_extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update(CRM_DATABASE_URL=database_url, CRM_SECRET_KEY=TEST_SECRET, COLUMNS="200")
    env.update(env_extra)
    result = subprocess.run(
        [sys.executable, "-m", "crm", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"crm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def test_tenant_settings_show_set_unset(tmp_path: Path, database_url: str) -> None:
    tenant = json.loads(
        crm(tmp_path, database_url, "tenants", "create", "--name", "Acme", "--json").stdout
    )
    shown = json.loads(
        crm(tmp_path, database_url, "tenants", "settings", tenant["id"], "--json").stdout
    )
    assert shown["settings"] == {}
    assert shown["effective"] == {"sms_daily_limit": 5000}
    assert shown["sms_sent_today"] == {}
    # The deployment default comes from CRM_SMS_DAILY_LIMIT.
    lowered = crm(
        tmp_path,
        database_url,
        "tenants",
        "settings",
        tenant["id"],
        "--json",
        CRM_SMS_DAILY_LIMIT="700",
    )
    assert json.loads(lowered.stdout)["effective"] == {"sms_daily_limit": 700}

    changed = json.loads(
        crm(
            tmp_path,
            database_url,
            "tenants",
            "settings",
            tenant["id"],
            "sms_daily_limit=250",
            "--json",
        ).stdout
    )
    assert changed["settings"] == {"sms_daily_limit": 250}
    assert changed["effective"] == {"sms_daily_limit": 250}
    table = crm(tmp_path, database_url, "tenants", "settings", tenant["id"]).stdout
    assert "sms_daily_limit" in table and "250" in table
    assert "SMS today (UTC): live 0, test 0" in table

    unset = json.loads(
        crm(
            tmp_path,
            database_url,
            "tenants",
            "settings",
            tenant["id"],
            "--unset",
            "sms_daily_limit",
            "--json",
        ).stdout
    )
    assert unset["settings"] == {}
    assert unset["effective"] == {"sms_daily_limit": 5000}


def test_tenant_settings_refuse_bad_input(tmp_path: Path, database_url: str) -> None:
    tenant = json.loads(
        crm(tmp_path, database_url, "tenants", "create", "--name", "Acme", "--json").stdout
    )
    for assignment in (
        "sms_daily_limit=-1",
        "sms_daily_limit=lots",
        "sms_daily_limit=true",
        "sms_daily_limit",
        "nope=1",
    ):
        bad = crm(
            tmp_path, database_url, "tenants", "settings", tenant["id"], assignment, check=False
        )
        assert bad.returncode == 2, assignment
        assert "Traceback" not in bad.stderr
    unknown = crm(
        tmp_path, database_url, "tenants", "settings", tenant["id"], "--unset", "nope", check=False
    )
    assert unknown.returncode == 2
    assert "unknown setting" in unknown.stderr
    missing = crm(tmp_path, database_url, "tenants", "settings", "no-such-tenant", check=False)
    assert missing.returncode == 1
    assert "TENANT_NOT_FOUND" in missing.stderr
    # Nothing was stored by the refused commands.
    shown = json.loads(
        crm(tmp_path, database_url, "tenants", "settings", tenant["id"], "--json").stdout
    )
    assert shown["settings"] == {}


def test_application_sms_countries_are_validated(tmp_path: Path, database_url: str) -> None:
    tenant = json.loads(
        crm(tmp_path, database_url, "tenants", "create", "--name", "Acme", "--json").stdout
    )
    app_id = tenant["application_id"]
    changed = json.loads(
        crm(
            tmp_path,
            database_url,
            "applications",
            "settings",
            app_id,
            "sms_countries=cyp,GRC",
            "--json",
        ).stdout
    )
    assert changed["settings"] == {"sms_countries": "CYP,GRC"}
    assert changed["effective"]["live"]["sms_countries"] == ["CYP", "GRC"]
    bad = crm(
        tmp_path,
        database_url,
        "applications",
        "settings",
        app_id,
        "sms_countries=CYP,XYZ",
        check=False,
    )
    assert bad.returncode == 2
    assert "XYZ" in bad.stderr
    assert "Traceback" not in bad.stderr
