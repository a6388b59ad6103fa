"""A contact written by the batch import has the same rows as one created through the API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from crm.contacts import importer
from crm.contacts.models import AuditEvent, ConsentEvent, Contact, ContactPhone
from crm.runtime import Runtime
from crm.tenants.schemas import CreatedTenant

BODY: dict[str, Any] = {
    "first_name": "Élodie",
    "last_name": "Marchand",
    "company_name": "Marchand SARL",
    "email_address": "Elodie.Marchand@Example.com",
    "phones": [
        {"phone_type": "MOBILE", "country_code": "CYP", "number": "99 123-456", "is_primary": True},
        {"phone_type": "LANDLINE", "number": "+44 (0)20 7946 0000"},
    ],
    "addresses": [
        {
            "address_type": "HOME",
            "address_line_1": "1 Main St",
            "town_city": "Nicosia",
            "country_code": "cyp",
            "is_primary": True,
        }
    ],
    "custom_fields": [{"key": "tier", "value": "gold"}],
    "tags": ["vip"],
    "language_code": "fr",
    "country_of_agreement": "cyp",
    "demographics": {"gender": "FEMALE", "date_of_birth": {"year": 1990, "month": 5, "day": 17}},
    "service_acceptance": True,
    "sms_opt_out": True,
}

_VOLATILE = {"pk", "id", "code", "code_norm", "created_at", "updated_at", "tenant_id"}


async def _rows(runtime: Runtime, tenant_id: str, contact_id: str) -> dict[str, Any]:
    async with runtime.sessions() as session:
        contact = await session.scalar(
            select(Contact).where(Contact.tenant_id == tenant_id, Contact.id == contact_id)
        )
        assert contact is not None
        phones = (
            await session.scalars(
                select(ContactPhone)
                .where(ContactPhone.contact_pk == contact.pk)
                .order_by(ContactPhone.number)
            )
        ).all()
        consents = (
            await session.scalars(
                select(ConsentEvent)
                .where(ConsentEvent.contact_pk == contact.pk)
                .order_by(ConsentEvent.flag)
            )
        ).all()
        audits = (
            await session.scalars(
                select(AuditEvent).where(
                    AuditEvent.tenant_id == tenant_id, AuditEvent.contact_id == contact_id
                )
            )
        ).all()
    fields = {
        c.key: getattr(contact, c.key) for c in Contact.__table__.columns if c.key not in _VOLATILE
    }
    # Each address gets its own generated id.
    fields["addresses"] = [{k: v for k, v in a.items() if k != "id"} for a in fields["addresses"]]
    return {
        "contact": fields,
        "phones": [
            (p.phone_type, p.country_code, p.number, p.e164, p.is_primary, p.mode) for p in phones
        ],
        "consent": [(c.flag, c.value, c.source) for c in consents],
        "audit": [(a.action, a.fields, a.mode) for a in audits],
    }


async def test_batch_import_writes_what_the_api_writes(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    defined = await client.put(
        "/backoffice/v1/custom_fields/tier",
        json={},
        headers={"api_key": tenant.keys["secret_live"]},
    )
    assert defined.status_code == 201, defined.text
    response = await client.post(
        "/backoffice/v1/contacts",
        json={**BODY, "id": "via-api", "code": "API-1"},
        headers={"api_key": tenant.keys["secret_live"]},
    )
    assert response.status_code == 201, response.text

    row = {
        name: json.dumps(value)
        if isinstance(value, list | dict)
        else str(value).lower()
        if isinstance(value, bool)
        else value
        for name, value in {**BODY, "id": "via-import", "code": "IMP-1"}.items()
    }
    async with runtime.sessions() as session:
        result = await importer.import_batch(
            session,
            runtime.clock,
            tenant_id=tenant.id,
            mode="live",
            rows=[(2, row)],
            actor="cli:import",
        )
        await session.commit()
    assert (result.created, result.skipped, result.rejected) == (1, 0, [])

    api = await _rows(runtime, tenant.id, "via-api")
    imported = await _rows(runtime, tenant.id, "via-import")
    assert imported["contact"] == api["contact"]
    assert imported["phones"] == api["phones"]
    assert len(imported["phones"]) == 2
    assert imported["audit"] == api["audit"]
    assert imported["audit"][0][0] == "CREATED"
    # The same flags in the history; only the surface that set them differs.
    assert [c[:2] for c in imported["consent"]] == [c[:2] for c in api["consent"]]
    assert {c[2] for c in imported["consent"]} == {"IMPORT"}
    assert ("sms_opt_out", True) in [c[:2] for c in imported["consent"]]


async def test_batch_rejects_repeats_and_skips_existing(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    rows = [
        (2, {"id": "r-1", "code": "R1", "first_name": "A"}),
        (3, {"id": "r-1", "code": "R2", "first_name": "B"}),
        (4, {"id": "r-3", "code": "R1", "first_name": "C"}),
        (5, {"id": "r-4", "email_address": "not-an-email"}),
    ]
    async with runtime.sessions() as session:
        first = await importer.import_batch(
            session, runtime.clock, tenant_id=tenant.id, mode="live", rows=rows, actor="t"
        )
        await session.commit()
    assert first.created == 1
    assert {r.line: r.reason.split(":")[0] for r in first.rejected} == {
        3: "DUPLICATE_IN_FILE",
        4: "DUPLICATE_IN_FILE",
        5: "INVALID_EMAIL",
    }
    async with runtime.sessions() as session:
        again = await importer.import_batch(
            session, runtime.clock, tenant_id=tenant.id, mode="live", rows=rows[:1], actor="t"
        )
        await session.commit()
    assert (again.created, again.skipped, again.rejected) == (0, 1, [])


async def test_batch_meeting_a_taken_id_falls_back_row_by_row(
    runtime: Runtime, tenant: CreatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer took an id between the existence check and the batch's write (COPY on
    PostgreSQL): the batch's write fails whole, and each row is retried on its own."""
    async with runtime.sessions() as session:
        await importer.import_batch(
            session,
            runtime.clock,
            tenant_id=tenant.id,
            mode="live",
            rows=[(2, {"id": "race-1", "first_name": "First"})],
            actor="t",
        )
        await session.commit()

    async def no_check(session: Any, prepared: list[Any], **_: Any) -> list[Any]:
        return prepared  # the race: the check saw nothing

    monkeypatch.setattr(importer, "_drop_existing", no_check)
    rows = [
        (2, {"id": "race-1", "first_name": "Again"}),
        (
            3,
            {"id": "race-2", "first_name": "New", "phone": "99123456", "phone_country_code": "CYP"},
        ),
    ]
    async with runtime.sessions() as session:
        result = await importer.import_batch(
            session, runtime.clock, tenant_id=tenant.id, mode="live", rows=rows, actor="t"
        )
        await session.commit()
    assert (result.created, result.skipped, result.rejected) == (1, 1, [])
    async with runtime.sessions() as session:
        names = dict(
            (
                await session.execute(
                    select(Contact.id, Contact.first_name).where(Contact.tenant_id == tenant.id)
                )
            ).all()
        )
        phones = (
            await session.scalars(
                select(ContactPhone.e164)
                .join(Contact, Contact.pk == ContactPhone.contact_pk)
                .where(Contact.id == "race-2")
            )
        ).all()
    assert names == {"race-1": "First", "race-2": "New"}
    assert phones == ["+35799123456"]


async def test_a_fresh_batch_is_written_without_the_existence_check(
    runtime: Runtime, tenant: CreatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No id or code of a fresh batch exists, so it is written without asking; the check runs
    only when the write meets a taken one, and then skips that row."""
    checked: list[int] = []
    check = importer._drop_existing

    async def counted(session: Any, prepared: list[Any], **kwargs: Any) -> list[Any]:
        checked.append(len(prepared))
        return await check(session, prepared, **kwargs)

    monkeypatch.setattr(importer, "_drop_existing", counted)
    rows = [(2, {"id": "fresh-1", "first_name": "A"}), (3, {"id": "fresh-2", "first_name": "B"})]
    async with runtime.sessions() as session:
        first = await importer.import_batch(
            session, runtime.clock, tenant_id=tenant.id, mode="live", rows=rows, actor="t"
        )
        await session.commit()
    assert (first.created, first.skipped, checked) == (2, 0, [])
    again = [(2, {"id": "fresh-1", "first_name": "A"}), (3, {"id": "fresh-3", "first_name": "C"})]
    async with runtime.sessions() as session:
        second = await importer.import_batch(
            session, runtime.clock, tenant_id=tenant.id, mode="live", rows=again, actor="t"
        )
        await session.commit()
    assert (second.created, second.skipped, checked) == (1, 1, [2])
