"""The Back-Office unlock: a locked identity is unlocked, audited, and its owner signs in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import select, update

from crm.identities.models import FailureCounter, Identity
from crm.identities.signing import ensure_signing_key
from crm.identities.throttle import password_subject
from crm.runtime import Runtime
from crm.tenants import service as tenants
from crm.tenants.schemas import CreatedTenant
from tests.conftest import TEST_SECRET

BASE = "/backoffice/v1/contacts"
PASSWORD = "correct horse battery 9"


def sk(tenant: CreatedTenant) -> dict[str, str]:
    return {"api_key": tenant.keys["secret_test"]}


async def _locked_owner(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, contact_id: str
) -> tuple[str, str]:
    """A contact with an email and password whose identity and password count are both locked:
    (identity id, email)."""
    await ensure_signing_key(runtime.engine, runtime.secret, runtime.clock)
    made = await client.post(BASE, json={"id": contact_id, "first_name": "Ann"}, headers=sk(tenant))
    assert made.status_code == 201, made.text
    email = f"{contact_id}@example.com"
    added = await client.post(
        f"{BASE}/{contact_id}/identities",
        json={"provider": "EMAIL", "email": email, "password": PASSWORD, "verified": True},
        headers=sk(tenant),
    )
    assert added.status_code == 201, added.text
    identity_id = added.json()["id"]
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        identity = await session.scalar(select(Identity).where(Identity.id == identity_id))
        assert identity is not None
        await session.execute(
            update(Identity)
            .where(Identity.id == identity_id)
            .values(failed_attempts=1000, last_failure_at=now, locked_at=now)
        )
        session.add(
            FailureCounter(
                subject=password_subject(identity.contact_pk),
                failed_attempts=1000,
                last_failure_at=now,
                locked_at=now,
            )
        )
        await session.commit()
    return identity_id, email


async def _sign_in(client: httpx.AsyncClient, tenant: CreatedTenant, email: str) -> httpx.Response:
    return await client.post(
        "/self-service/v2/contacts/authenticate",
        json={"username": email, "password": PASSWORD},
        headers={"api_key": tenant.keys["public_test"]},
    )


async def test_unlock_lifts_the_lock_is_audited_and_the_owner_signs_in(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    identity_id, email = await _locked_owner(client, runtime, tenant, "locked-1")
    refused = await _sign_in(client, tenant, email)
    assert (refused.status_code, refused.json()["code"]) == (403, "IDENTITY_LOCKED")

    unlocked = await client.post(
        f"{BASE}/locked-1/identities/{identity_id}/unlock", headers=sk(tenant)
    )
    assert unlocked.status_code == 204, unlocked.text
    async with runtime.sessions() as session:
        identity = await session.scalar(select(Identity).where(Identity.id == identity_id))
        assert identity is not None
        assert (identity.locked_at, identity.failed_attempts) == (None, 0)
    audit = (await client.get(f"{BASE}/locked-1/audit", headers=sk(tenant))).json()["content"]
    assert audit[0]["action"] == "IDENTITY_UNLOCKED"
    assert (await _sign_in(client, tenant, email)).status_code == 200


async def test_unlock_of_another_tenants_or_contacts_identity_is_404(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    identity_id, email = await _locked_owner(client, runtime, tenant, "locked-2")
    async with runtime.sessions() as session:
        other = await tenants.create_tenant(session, runtime.clock, "Other unlock tenant")
        await session.commit()
    # The other tenant, even with a contact of the same id, cannot reach this identity.
    assert (
        await client.post(BASE, json={"id": "locked-2", "first_name": "Bo"}, headers=sk(other))
    ).status_code == 201
    for headers, ref, target, wanted in (
        (sk(other), "locked-2", identity_id, "IDENTITY_NOT_FOUND"),
        (sk(other), "nobody", identity_id, "CONTACT_NOT_FOUND"),
        (sk(tenant), "nobody", identity_id, "CONTACT_NOT_FOUND"),
        (sk(tenant), "locked-2", "x" * 40, "IDENTITY_NOT_FOUND"),
    ):
        answer = await client.post(f"{BASE}/{ref}/identities/{target}/unlock", headers=headers)
        assert (answer.status_code, answer.json()["code"]) == (404, wanted)
    # Live keys do not reach test-mode contacts either.
    live = {"api_key": tenant.keys["secret_live"]}
    answer = await client.post(f"{BASE}/locked-2/identities/{identity_id}/unlock", headers=live)
    assert answer.status_code == 404
    # Still locked: none of those reached it.
    refused = await _sign_in(client, tenant, email)
    assert (refused.status_code, refused.json()["code"]) == (403, "IDENTITY_LOCKED")


async def test_cli_unlock_by_identity_id_and_by_contact(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, tmp_path: Path
) -> None:
    identity_id, email = await _locked_owner(client, runtime, tenant, "locked-3")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update(
        CRM_DATABASE_URL=runtime.settings.database_url, CRM_SECRET_KEY=TEST_SECRET, COLUMNS="200"
    )

    def crm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "crm", "identities", "unlock", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    wrong_mode = crm(identity_id, "--tenant", tenant.id, "--mode", "live")
    assert wrong_mode.returncode == 1
    assert "IDENTITY_NOT_FOUND" in wrong_mode.stderr
    wrong_contact = crm(identity_id, "--tenant", tenant.id, "--mode", "test", "--contact", "x")
    assert "CONTACT_NOT_FOUND" in wrong_contact.stderr
    done = crm(identity_id, "--tenant", tenant.id, "--mode", "test")
    assert done.returncode == 0, done.stderr
    assert (await _sign_in(client, tenant, email)).status_code == 200
    audit = (await client.get(f"{BASE}/locked-3/audit", headers=sk(tenant))).json()["content"]
    assert audit[0]["action"] == "IDENTITY_UNLOCKED"
    assert json.dumps(audit).count("cli:identities") == 1
    # By contact ref too.
    by_contact = crm(identity_id, "--tenant", tenant.id, "--mode", "test", "--contact", "locked-3")
    assert by_contact.returncode == 0, by_contact.stderr
