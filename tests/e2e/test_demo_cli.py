"""`crm tenants demo`: the base URL kept beside the keys, and sample contacts made once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.server import crm_env


def _crm(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = crm_env(f"sqlite:///{tmp_path / 'crm.db'}")
    return subprocess.run(
        [sys.executable, "-m", "crm", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_keeps_the_base_url_and_adds_sample_contacts_once(tmp_path: Path) -> None:
    assert _crm(tmp_path, "db", "upgrade").returncode == 0
    first = _crm(
        tmp_path, "tenants", "demo", "--base-url", "http://127.0.0.1:8123/", "--with-contacts", "25"
    )
    assert first.returncode == 0, first.stderr
    assert "25 created" in first.stdout
    saved = json.loads((tmp_path / "var" / "demo-keys.json").read_text())
    assert saved["base_url"] == "http://127.0.0.1:8123"
    # The console's address and its demo owner, printed and kept.
    owner = saved["console"]
    assert "http://127.0.0.1:8123/console/" in first.stdout
    assert owner["email"] in first.stdout and owner["password"] in first.stdout
    again = _crm(tmp_path, "tenants", "demo", "--with-contacts", "30")
    assert again.returncode == 0, again.stderr
    assert "5 created" in again.stdout
    kept = json.loads((tmp_path / "var" / "demo-keys.json").read_text())["console"]
    assert (kept["email"], kept["password"]) == (owner["email"], owner["password"])
    exported = _crm(
        tmp_path,
        "contacts",
        "export",
        "--tenant",
        saved["id"],
        "--mode",
        "test",
        "--format",
        "jsonl",
    )
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]
    assert sorted(r["id"] for r in rows) == [f"demo-{n:05d}" for n in range(1, 31)]
    assert all(r["email_address"].endswith("@example.com") for r in rows)
    too_many = _crm(tmp_path, "tenants", "demo", "--with-contacts", "10001")
    assert too_many.returncode != 0
