"""The `crm` command as an operator runs it: migrations, tenants, keys, and serve's refusal."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest


def crm(tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["CRM_DATABASE_URL"] = f"sqlite:///{tmp_path / 'crm.db'}"
    env["COLUMNS"] = "200"
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


def test_serve_refuses_unmigrated_database(tmp_path: Path) -> None:
    result = crm(tmp_path, "serve", "--port", "1", check=False)
    assert result.returncode != 0
    assert "crm db upgrade" in result.stderr + result.stdout


def test_tenant_and_key_lifecycle_json(tmp_path: Path) -> None:
    crm(tmp_path, "db", "upgrade")
    result = crm(tmp_path, "tenants", "create", "--name", "Acme", "--json")
    created = json.loads(result.stdout)  # exactly one JSON document on stdout
    secret_file = tmp_path / "secret_key"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert "generated one into" in result.stderr
    assert set(created) == {"id", "name", "application_id", "keys"}
    assert created["name"] == "Acme"
    assert set(created["keys"]) == {"public_test", "public_live", "secret_test", "secret_live"}
    for label, key in created["keys"].items():
        kind, mode = label.split("_")
        assert key.startswith(f"{'pk' if kind == 'public' else 'sk'}_{mode}_")
        assert len(key) >= len("pk_test_") + 32  # 192 random bits, url-safe base64

    listed = json.loads(crm(tmp_path, "tenants", "list", "--json").stdout)
    assert [t["id"] for t in listed] == [created["id"]]

    key = json.loads(
        crm(
            tmp_path,
            "keys",
            "create",
            "--tenant",
            created["id"],
            "--kind",
            "secret",
            "--mode",
            "live",
            "--json",
        ).stdout
    )
    assert key["key"].startswith("sk_live_")
    keys = json.loads(crm(tmp_path, "keys", "list", "--tenant", created["id"], "--json").stdout)
    assert len(keys) == 5
    assert all(key["key"] not in json.dumps(k) for k in keys)
    revoked = json.loads(crm(tmp_path, "keys", "revoke", key["id"], "--json").stdout)
    assert revoked["revoked_at"] is not None

    missing = crm(tmp_path, "keys", "list", "--tenant", "nope", check=False)
    assert missing.returncode == 1
    assert "TENANT_NOT_FOUND" in missing.stderr


def test_demo_tenant_is_created_once_and_keys_reprinted(tmp_path: Path) -> None:
    crm(tmp_path, "db", "upgrade")
    first = crm(tmp_path, "tenants", "demo").stdout
    second = crm(tmp_path, "tenants", "demo").stdout
    keys = json.loads((tmp_path / "var" / "demo-keys.json").read_text())
    assert keys["keys"]["public_test"] in first
    assert keys["keys"]["public_test"] in second
    # Without the kept file the tenant stays, with fresh keys for its application.
    (tmp_path / "var" / "demo-keys.json").unlink()
    third = crm(tmp_path, "tenants", "demo").stdout
    reissued = json.loads((tmp_path / "var" / "demo-keys.json").read_text())
    assert reissued["id"] == keys["id"]
    assert reissued["application_id"] == keys["application_id"]
    assert reissued["keys"]["public_test"] != keys["keys"]["public_test"]
    assert reissued["keys"]["public_test"] in third
    assert "9947823" in first
    listed = json.loads(crm(tmp_path, "tenants", "list", "--json").stdout)
    assert [t["name"] for t in listed] == ["Demo"]


@pytest.mark.parametrize(
    "command", [[], ["db"], ["tenants"], ["keys"], ["serve"], ["tenants", "create"]]
)
def test_every_command_has_help(tmp_path: Path, command: list[str]) -> None:
    result = crm(tmp_path, *command, "--help")
    assert "Usage" in result.stdout


def test_applications_have_own_keys_and_policy_settings(tmp_path: Path) -> None:
    crm(tmp_path, "db", "upgrade")
    tenant = json.loads(crm(tmp_path, "tenants", "create", "--name", "Acme", "--json").stdout)
    portal = json.loads(
        crm(
            tmp_path,
            "applications",
            "create",
            "--tenant",
            tenant["id"],
            "--name",
            "Portal",
            "--json",
        ).stdout
    )
    assert set(portal["keys"]) == {"public_test", "public_live"}
    assert portal["keys"]["public_live"].startswith("pk_live_")
    apps = json.loads(
        crm(tmp_path, "applications", "list", "--tenant", tenant["id"], "--json").stdout
    )
    assert [a["name"] for a in apps] == ["Default application", "Portal"]

    changed = json.loads(
        crm(
            tmp_path,
            "applications",
            "settings",
            portal["id"],
            "otp_resend_cooldown_seconds=0",
            "strict_phone_validation=true",
            "--json",
        ).stdout
    )
    assert changed["settings"] == {
        "otp_resend_cooldown_seconds": 0,
        "strict_phone_validation": True,
    }
    # Only test keys may go without a cooldown; live codes keep a floor.
    assert changed["effective"]["test"]["otp_resend_cooldown_seconds"] == 0
    assert changed["effective"]["live"]["otp_resend_cooldown_seconds"] >= 1
    assert changed["effective"]["live"]["strict_phone_validation"] is True

    unset = json.loads(
        crm(
            tmp_path,
            "applications",
            "settings",
            portal["id"],
            "--unset",
            "strict_phone_validation",
            "--json",
        ).stdout
    )
    assert unset["settings"] == {"otp_resend_cooldown_seconds": 0}

    bad = crm(
        tmp_path, "applications", "settings", portal["id"], "otp_ttl_seconds=soon", check=False
    )
    assert bad.returncode != 0
    assert "otp_ttl_seconds needs a whole number" in bad.stderr + bad.stdout
    # A mode that does not exist is refused rather than stored and read as the default.
    odd = crm(
        tmp_path,
        "applications",
        "settings",
        portal["id"],
        "email_password_registration=tokens_later",
        check=False,
    )
    assert odd.returncode != 0
    assert "proof_first or tokens_first" in odd.stderr + odd.stdout
    unknown = crm(tmp_path, "applications", "settings", portal["id"], "nope=1", check=False)
    assert unknown.returncode != 0
    assert "unknown setting" in unknown.stderr + unknown.stdout
