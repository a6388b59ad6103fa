"""`crm applications settings` for per-client limits and allowed origins, as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_cli import crm


def test_client_limits_and_origins_are_application_settings(tmp_path: Path) -> None:
    crm(tmp_path, "db", "upgrade")
    tenant = json.loads(crm(tmp_path, "tenants", "create", "--name", "Acme", "--json").stdout)
    app_id = tenant["application_id"]

    shown = json.loads(crm(tmp_path, "applications", "settings", app_id, "--json").stdout)
    assert shown["effective"]["live"]["register_limit_per_client_hour"] == 30
    assert shown["effective"]["live"]["signin_limit_per_client_minute"] == 60
    assert shown["effective"]["live"]["allowed_origins"] is None

    changed = json.loads(
        crm(
            tmp_path,
            "applications",
            "settings",
            app_id,
            "signin_limit_per_client_minute=600",
            "allowed_origins=HTTPS://Portal.Example.com/,http://localhost:3000",
            "--json",
        ).stdout
    )
    live = changed["effective"]["live"]
    assert live["signin_limit_per_client_minute"] == 600
    assert live["allowed_origins"] == "http://localhost:3000,https://portal.example.com"

    for bad in [
        "allowed_origins=https://portal.example.com,null",
        "allowed_origins=https://*.example.com",
        "signin_limit_per_client_minute=many",
    ]:
        refused = crm(tmp_path, "applications", "settings", app_id, bad, check=False)
        assert refused.returncode != 0, bad
    stored = json.loads(crm(tmp_path, "applications", "settings", app_id, "--json").stdout)
    assert stored["settings"]["allowed_origins"].startswith("HTTPS://Portal")


def test_deployment_default_shows_where_the_application_sets_none(tmp_path: Path) -> None:
    crm(tmp_path, "db", "upgrade")
    tenant = json.loads(crm(tmp_path, "tenants", "create", "--name", "Acme", "--json").stdout)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["CRM_DATABASE_URL"] = f"sqlite:///{tmp_path / 'crm.db'}"
    env["CRM_REGISTER_LIMIT_PER_CLIENT_HOUR"] = "5"
    args = ["applications", "settings", tenant["application_id"], "--json"]
    shown = subprocess.run(
        [sys.executable, "-m", "crm", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(shown.stdout)["effective"]["live"]["register_limit_per_client_hour"] == 5
