"""`crm templates` as an operator runs it, on both databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_SECRET


def crm(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update(CRM_DATABASE_URL=database_url, CRM_SECRET_KEY=TEST_SECRET, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "crm", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_templates_set_list_preview_delete(tmp_path: Path, database_url: str) -> None:
    made = crm(tmp_path, database_url, "tenants", "create", "--name", "Tpl Shop", "--json")
    tenant = json.loads(made.stdout)["id"]
    scope = ["--tenant", tenant, "--mode", "live"]
    text = tmp_path / "otp.txt"
    text.write_text("Hello from {tenant}.\n\nYour code is {code}.\n", encoding="utf-8")
    saved = crm(
        tmp_path,
        database_url,
        "templates",
        "set",
        "OTP",
        "en",
        *scope,
        "--sms",
        "{code}: {tenant} code",
        "--subject",
        "{tenant} sign-in",
        "--text-file",
        str(text),
        "--json",
    )
    assert saved.returncode == 0, saved.stderr
    assert json.loads(saved.stdout)["sms"] == "{code}: {tenant} code"
    listed = json.loads(crm(tmp_path, database_url, "templates", "list", *scope, "--json").stdout)
    assert [(t["purpose"], t["language"]) for t in listed] == [("OTP", "en")]
    shown = json.loads(
        crm(tmp_path, database_url, "templates", "preview", "OTP", "en", *scope, "--json").stdout
    )
    assert shown["sms"] == "123456: Tpl Shop code"
    assert shown["text"] == "Hello from Tpl Shop.\n\nYour code is 123456.\n"
    refused = crm(
        tmp_path, database_url, "templates", "set", "OTP", "en", *scope, "--sms", "{coupon}"
    )
    assert refused.returncode == 1
    assert "TEMPLATE_UNKNOWN_PLACEHOLDER" in refused.stderr
    assert "Traceback" not in refused.stderr
    deleted = crm(tmp_path, database_url, "templates", "delete", "OTP", "en", *scope)
    assert deleted.returncode == 0, deleted.stderr
    again = crm(tmp_path, database_url, "templates", "delete", "OTP", "en", *scope)
    assert again.returncode == 1 and "TEMPLATE_NOT_FOUND" in again.stderr
    nobody = crm(
        tmp_path,
        database_url,
        "templates",
        "set",
        "OTP",
        "en",
        "--tenant",
        "x",
        "--mode",
        "live",
        "--sms",
        "{code}",
    )
    assert nobody.returncode == 1 and "TENANT_NOT_FOUND" in nobody.stderr
