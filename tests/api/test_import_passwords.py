"""Customers imported with their old password hashes sign in with their old passwords."""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
from typing import Any

import bcrypt
from argon2 import PasswordHasher, Type
from sqlalchemy import func, select

from crm.contacts.import_reader import Reader
from crm.contacts.models import AuditEvent, Contact
from crm.identities.models import FailureCounter, Identity
from crm.imports import pipeline
from crm.runtime import Runtime
from crm.tenants.schemas import CreatedTenant
from tests.support.selfservice import bearer, key, last_code
from tests.unit.test_legacy_hashes import FIREBASE, FIREBASE_ROW

V2 = "/self-service/v2"
OLD = "an old password 7"


def _csv(rows: list[dict[str, str]]) -> io.BytesIO:
    out = io.StringIO()
    writer = csv.DictWriter(out, ["id", "first_name", "email_address", "password_hash"])
    writer.writeheader()
    writer.writerows(rows)
    return io.BytesIO(out.getvalue().encode())


async def _import(
    runtime: Runtime, tenant: CreatedTenant, rows: list[dict[str, str]]
) -> pipeline.Summary:
    options = pipeline.Options(
        tenant_id=tenant.id, mode="test", actor="test:import", batch_size=50, firebase=FIREBASE
    )
    reader = Reader(_csv(rows), encoding="utf-8", delimiter=None)
    return await pipeline.run(runtime.sessions, runtime.clock, reader, options)


async def _authenticate(client: Any, tenant: Any, username: str, password: str) -> Any:
    body = {"provider": "EMAIL", "username": username, "password": password}
    return await client.post(f"{V2}/contacts/authenticate", json=body, headers=key(tenant))


async def _stored_hash(runtime: Runtime, tenant: CreatedTenant, email: str) -> str | None:
    async with runtime.sessions() as session:
        return await session.scalar(
            select(Identity.password_hash).where(
                Identity.tenant_id == tenant.id, Identity.identifier == email
            )
        )


def _hashes() -> dict[str, str]:
    salt = secrets.token_hex(8)
    django = hashlib.pbkdf2_hmac("sha256", OLD.encode(), salt.encode(), 1000)
    import base64

    return {
        "bcrypt": bcrypt.hashpw(OLD.encode(), bcrypt.gensalt(4)).decode(),
        "argon2i": PasswordHasher(time_cost=1, memory_cost=1024, type=Type.I).hash(OLD),
        "django": f"pbkdf2_sha256$1000${salt}${base64.b64encode(django).decode()}",
    }


async def test_each_imported_customer_signs_in_with_the_old_password_then_holds_argon2id(
    client: Any, runtime: Runtime, tenant: CreatedTenant
) -> None:
    tag = secrets.token_hex(4)
    rows = [
        {
            "id": f"{name}-{tag}",
            "first_name": name,
            "email_address": f"{name}-{tag}@example.com",
            "password_hash": value,
        }
        for name, value in _hashes().items()
    ]
    rows.append(
        {
            "id": f"fb-{tag}",
            "first_name": "fb",
            "email_address": f"fb-{tag}@example.com",
            "password_hash": FIREBASE_ROW,
        }
    )
    summary = await _import(runtime, tenant, rows)
    assert (summary.created, summary.rejected) == (4, [])
    for row in rows:
        email = row["email_address"]
        password = "user1password" if row["id"].startswith("fb-") else OLD
        assert (await _authenticate(client, tenant, email, password + "!")).status_code == 401
        assert not (await _stored_hash(runtime, tenant, email) or "").startswith("$argon2id$")
        signed = await _authenticate(client, tenant, email, password)
        assert signed.status_code == 200, (row["id"], signed.text)
        assert signed.json()["contact"]["id"] == row["id"]
        stored = await _stored_hash(runtime, tenant, email)
        assert stored is not None and stored.startswith("$argon2id$")
        # The re-hashed password still signs in; the old hash is gone.
        assert (await _authenticate(client, tenant, email, password)).status_code == 200


async def test_a_wrong_password_on_an_imported_hash_counts_like_any_other(
    client: Any, runtime: Runtime, tenant: CreatedTenant
) -> None:
    email = f"wrong-{secrets.token_hex(4)}@example.com"
    value = bcrypt.hashpw(OLD.encode(), bcrypt.gensalt(4)).decode()
    await _import(
        runtime,
        tenant,
        [{"id": "", "first_name": "W", "email_address": email, "password_hash": value}],
    )
    for _ in range(2):
        assert (await _authenticate(client, tenant, email, "not it at all 9")).status_code == 401
    async with runtime.sessions() as session:
        pk = await session.scalar(
            select(Contact.pk).where(
                Contact.tenant_id == tenant.id, Contact.email_canonical == email
            )
        )
        counter = await session.get(FailureCounter, f"password:contact:{pk}")
    assert counter is not None and counter.failed_attempts == 2
    assert (await _stored_hash(runtime, tenant, email) or "").startswith("$2b$")


async def test_rows_with_unusable_hashes_are_rejected_by_line_and_code_never_the_hash(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    tag = secrets.token_hex(4)
    md5 = hashlib.md5(b"x").hexdigest()
    good = bcrypt.hashpw(OLD.encode(), bcrypt.gensalt(4)).decode()
    rows = [
        {
            "id": f"a-{tag}",
            "first_name": "A",
            "email_address": f"a-{tag}@example.com",
            "password_hash": md5,
        },
        {"id": f"b-{tag}", "first_name": "B", "email_address": "", "password_hash": good},
        {
            "id": f"c-{tag}",
            "first_name": "C",
            "email_address": f"c-{tag}@example.com",
            "password_hash": good,
        },
        {
            "id": f"d-{tag}",
            "first_name": "D",
            "email_address": f"C-{tag}@example.com",
            "password_hash": good,
        },
        {
            "id": f"e-{tag}",
            "first_name": "E",
            "email_address": f"e-{tag}@example.com",
            "password_hash": "",
        },
    ]
    summary = await _import(runtime, tenant, rows)
    assert summary.created == 2
    reasons = {r.line: r.reason for r in summary.rejected}
    assert sorted(reasons) == [2, 3, 5]
    assert reasons[2].startswith("PASSWORD_HASH_UNKNOWN_FORMAT")
    assert reasons[3].startswith("PASSWORD_HASH_NEEDS_EMAIL")
    assert reasons[5].startswith("DUPLICATE_IN_FILE")
    assert all(md5 not in r and good not in r for r in reasons.values())
    # A re-run creates nothing twice and the held address is not given a second identity.
    again = await _import(runtime, tenant, [*rows[2:3], {**rows[2], "id": f"f-{tag}"}])
    assert again.skipped == 1
    assert [r.reason.split(":")[0] for r in again.rejected] == ["IDENTITY_ALREADY_EXISTS"]
    async with runtime.sessions() as session:
        added = await session.scalar(
            select(AuditEvent.fields).where(
                AuditEvent.tenant_id == tenant.id,
                AuditEvent.contact_id == f"c-{tag}",
                AuditEvent.action == "IDENTITY_ADDED",
            )
        )
    assert added == ["provider", "password"]


async def test_an_imported_password_ends_at_the_first_proof_by_code(
    client: Any, runtime: Runtime, tenant: CreatedTenant
) -> None:
    # Proof before power: the business's identity holds its address, but the password it
    # brought is not the prover's; the first code proof ends it and the sessions it opened.
    email = f"proof-{secrets.token_hex(4)}@example.com"
    value = bcrypt.hashpw(OLD.encode(), bcrypt.gensalt(4)).decode()
    await _import(
        runtime,
        tenant,
        [{"id": "", "first_name": "P", "email_address": email, "password_hash": value}],
    )
    signed = await _authenticate(client, tenant, email, OLD)
    assert signed.status_code == 200
    sent = await client.post(
        f"{V2}/contacts/otp",
        json={"method": "EMAIL", "credentials": [{"name": "EMAIL", "value": email}]},
        headers=key(tenant),
    )
    assert sent.status_code == 200, sent.text
    code = await last_code(runtime, tenant.id)
    proven = await client.post(
        f"{V2}/contacts/validate_otp",
        json={"auth_otp": sent.json()["auth_otp"], "code": code},
        headers=key(tenant),
    )
    assert proven.status_code == 200, proven.text
    assert (await _authenticate(client, tenant, email, OLD)).status_code == 401
    refreshed = await client.post(
        f"{V2}/contacts/refresh", headers=bearer(signed.json()["refresh_token"])
    )
    assert refreshed.status_code == 401


async def test_validator_processes_import_the_same_as_a_thread(
    client: Any, runtime: Runtime, tenant: CreatedTenant
) -> None:
    tag = secrets.token_hex(4)
    value = bcrypt.hashpw(OLD.encode(), bcrypt.gensalt(4)).decode()
    rows = [
        {
            "id": f"p{n}-{tag}",
            "first_name": "P",
            "email_address": f"p{n}-{tag}@example.com" if n % 50 else "not an email",
            "password_hash": value if n % 3 == 0 else "",
        }
        for n in range(300)
    ]
    options = pipeline.Options(
        tenant_id=tenant.id, mode="test", actor="test:import", batch_size=64, processes=2
    )
    reader = Reader(_csv(rows), encoding="utf-8", delimiter=None)
    summary = await pipeline.run(runtime.sessions, runtime.clock, reader, options)
    assert (summary.seen, summary.created, len(summary.rejected)) == (300, 294, 6)
    assert sorted(r.line for r in summary.rejected) == [n + 2 for n in range(0, 300, 50)]
    async with runtime.sessions() as session:
        identities = await session.scalar(
            select(func.count()).select_from(Identity).where(Identity.tenant_id == tenant.id)
        )
    assert identities == len([n for n in range(300) if n % 3 == 0 and n % 50])
    signed = await _authenticate(client, tenant, f"p3-{tag}@example.com", OLD)
    assert signed.status_code == 200, signed.text
    assert signed.json()["contact"]["id"] == f"p3-{tag}"
