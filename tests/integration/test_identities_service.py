"""The identity functions the back office calls, against SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select

from crm.contacts import service as contacts
from crm.contacts.contact_fields import ContactFields
from crm.contacts.models import AuditEvent
from crm.errors import InvalidPhone
from crm.identities import service
from crm.identities.errors import IdentityAlreadyExists, IdentityNotFound, ProviderNotSupported
from crm.runtime import Runtime
from tests.support.selfservice import bearer, sign_in_by_phone


async def _contact(session: Any, runtime: Runtime, tenant: Any, name: str) -> Any:
    return await contacts.create(
        session,
        runtime.clock,
        tenant_id=tenant.id,
        mode="test",
        fields=ContactFields(first_name=name),
        source="BACK_OFFICE",
        actor="test",
    )


async def test_add_list_remove_identity_and_audit(runtime: Runtime, tenant: Any) -> None:
    async with runtime.sessions() as session:
        contact = await _contact(session, runtime, tenant, "Ann")
        other = await _contact(session, runtime, tenant, "Bob")
        email = await service.add_identity(
            session,
            runtime.clock,
            runtime.secret,
            contact=contact,
            provider="EMAIL",
            email="Ann@Example.com",
            password="a long enough passphrase",
            verified=True,
            actor="bo",
        )
        assert email.identifier == "ann@example.com" and email.display == "Ann@Example.com"
        assert email.password_hash and "passphrase" not in email.password_hash
        assert email.verified_at is not None
        phone = await service.add_identity(
            session,
            runtime.clock,
            runtime.secret,
            contact=contact,
            provider="PHONE",
            phone="9947823",
            country_code="CYP",
            actor="bo",
        )
        assert phone.identifier == "+3579947823"
        for owner in (contact, other):  # taken even when the same contact asks again
            with pytest.raises(IdentityAlreadyExists):
                await service.add_identity(
                    session,
                    runtime.clock,
                    runtime.secret,
                    contact=owner,
                    provider="EMAIL",
                    email="ANN@example.com",
                    actor="bo",
                )
        with pytest.raises(ProviderNotSupported):
            await service.add_identity(
                session,
                runtime.clock,
                runtime.secret,
                contact=contact,
                provider="GOOGLE",
                actor="bo",
            )
        with pytest.raises(InvalidPhone):
            await service.add_identity(
                session,
                runtime.clock,
                runtime.secret,
                contact=contact,
                provider="PHONE",
                phone="9947823",
                country_code="CYP",
                actor="bo",
                strict_phone=True,
            )
        assert [i.id for i in await service.list_identities(session, contact.pk)] == [
            email.id,
            phone.id,
        ]
        with pytest.raises(IdentityNotFound):
            await service.remove_identity(
                session, runtime.clock, contact=other, identity_id=email.id, actor="bo"
            )
        await service.remove_identity(
            session, runtime.clock, contact=contact, identity_id=phone.id, actor="bo"
        )
        assert [i.id for i in await service.list_identities(session, contact.pk)] == [email.id]
        await session.flush()
        audits = list(
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.contact_id == contact.id, AuditEvent.action.like("IDENTITY_%"))
                .order_by(AuditEvent.created_at, AuditEvent.id)
            )
        )
        assert [(a.action, a.fields) for a in audits] == [
            ("IDENTITY_ADDED", ["provider", "password"]),
            ("IDENTITY_ADDED", ["provider"]),
            ("IDENTITY_REMOVED", ["provider"]),
        ]
        await session.rollback()


async def test_list_and_revoke_all_sessions(client: Any, runtime: Runtime, tenant: Any) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    async with runtime.sessions() as session:
        contact = await contacts.get_by_ref(session, tenant.id, "test", tokens["contact"]["id"])
        assert len(await service.list_sessions(session, contact.pk, clock=runtime.clock)) == 1
        assert await service.revoke_all_sessions(session, runtime.clock, contact.pk, "test") == 1
        await session.commit()
        assert await service.list_sessions(session, contact.pk, clock=runtime.clock) == []
    response = await client.get(
        f"/self-service/v2/contacts/{tokens['contact']['id']}",
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 401


async def test_signed_in_read_uses_no_orm_session_and_one_statement(
    client: Any, runtime: Runtime, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    url = f"/self-service/v2/contacts/{tokens['contact']['id']}"
    assert (await client.get(url, headers=bearer(tokens["access_token"]))).status_code == 200

    def no_sessions() -> Any:
        raise AssertionError("the signed-in read must not open an ORM session")

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    monkeypatch.setattr(runtime, "sessions", no_sessions)
    event.listen(runtime.engine.sync_engine, "before_cursor_execute", count)
    try:
        response = await client.get(url, headers=bearer(tokens["access_token"]))
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", count)
    assert response.status_code == 200
    # SQLite (in-process, BEGIN is local): one SELECT through the engine. PostgreSQL: nothing
    # through the engine; the one SELECT runs on the read pool without a transaction.
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    expected = 1 if runtime.settings.is_sqlite else 0
    assert len(selects) == expected, statements
    if not runtime.settings.is_sqlite:
        assert statements == []
