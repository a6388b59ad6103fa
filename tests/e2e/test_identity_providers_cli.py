"""`crm identity-providers` as an operator runs it, on both databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import TEST_SECRET

SECRET = "GOCSPX-cli-0123456789-wxyz"


def crm(
    tmp_path: Path, database_url: str, *args: str, stdin: str | None = None, **env_extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update(CRM_DATABASE_URL=database_url, CRM_SECRET_KEY=TEST_SECRET, COLUMNS="200")
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "crm", *args],
        cwd=tmp_path,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_identity_providers_set_list_delete(tmp_path: Path, database_url: str) -> None:
    made = crm(tmp_path, database_url, "tenants", "create", "--name", "Idp Shop", "--json")
    tenant = json.loads(made.stdout)["id"]
    scope = ["--tenant", tenant, "--mode", "live"]
    saved = crm(
        tmp_path,
        database_url,
        "identity-providers",
        "set",
        "google",
        *scope,
        "--client-id",
        "web.apps.googleusercontent.com",
        "--audience",
        "ios.apps.googleusercontent.com",
        "--json",
        CRM_IDP_CLIENT_SECRET=SECRET,
    )
    assert saved.returncode == 0, saved.stderr
    shown = json.loads(saved.stdout)
    assert shown["issuer"] == "https://accounts.google.com"
    assert shown["client_secret"] == "****wxyz" and SECRET not in saved.stdout
    assert shown["audiences"] == ["ios.apps.googleusercontent.com"]
    table = crm(tmp_path, database_url, "identity-providers", "list", *scope)
    assert "accounts.google.com" in table.stdout and SECRET not in table.stdout
    refused = crm(
        tmp_path, database_url, "identity-providers", "set", "oidc", *scope, "--client-id", "c"
    )
    assert refused.returncode == 1 and "IDENTITY_PROVIDER_INVALID" in refused.stderr
    nobody = crm(
        tmp_path,
        database_url,
        "identity-providers",
        "set",
        "apple",
        "--tenant",
        "no-such-tenant",
        "--mode",
        "live",
        "--client-id",
        "c",
    )
    assert nobody.returncode == 1 and "TENANT_NOT_FOUND" in nobody.stderr
    gone = crm(tmp_path, database_url, "identity-providers", "delete", "google", *scope)
    assert gone.returncode == 0, gone.stderr
    listed = crm(tmp_path, database_url, "identity-providers", "list", *scope, "--json")
    assert json.loads(listed.stdout) == []


def test_an_apple_key_from_a_file_or_standard_input(tmp_path: Path, database_url: str) -> None:
    made = crm(tmp_path, database_url, "tenants", "create", "--name", "Apple Shop", "--json")
    scope = ["--tenant", json.loads(made.stdout)["id"], "--mode", "live"]
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "AuthKey.p8").write_bytes(key)
    apple = ["identity-providers", "set", "apple", *scope, "--client-id", "com.example.web"]
    ids = ["--team-id", "TEAM012345", "--key-id", "KEY0123456", "--json"]
    by_file = crm(tmp_path, database_url, *apple, *ids, "--private-key-file", "AuthKey.p8")
    assert by_file.returncode == 0, by_file.stderr
    shown = json.loads(by_file.stdout)
    assert shown["team_id"] == "TEAM012345" and shown["private_key"].startswith("****")
    assert "PRIVATE KEY" not in by_file.stdout
    by_stdin = crm(
        tmp_path, database_url, *apple, *ids, "--private-key-file", "-", stdin=key.decode()
    )
    assert json.loads(by_stdin.stdout)["private_key"] == shown["private_key"]
