"""`crm applications settings ... default_country=` as an operator runs it, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_tenant_settings_cli import crm


def test_application_default_country_is_checked_and_stored(
    tmp_path: Path, database_url: str
) -> None:
    tenant = json.loads(
        crm(tmp_path, database_url, "tenants", "create", "--name", "Acme", "--json").stdout
    )
    app_id = tenant["application_id"]
    shown = json.loads(
        crm(tmp_path, database_url, "applications", "settings", app_id, "--json").stdout
    )
    assert shown["effective"]["live"]["default_country"] is None
    changed = json.loads(
        crm(
            tmp_path,
            database_url,
            "applications",
            "settings",
            app_id,
            "default_country=cyp",
            "--json",
        ).stdout
    )
    assert changed["settings"] == {"default_country": "CYP"}
    assert changed["effective"]["test"]["default_country"] == "CYP"
    for bad_value in ("default_country=XYZ", "default_country=12"):
        bad = crm(
            tmp_path, database_url, "applications", "settings", app_id, bad_value, check=False
        )
        assert bad.returncode == 2, bad_value
        assert "Traceback" not in bad.stderr
    kept = json.loads(
        crm(tmp_path, database_url, "applications", "settings", app_id, "--json").stdout
    )
    assert kept["settings"] == {"default_country": "CYP"}
