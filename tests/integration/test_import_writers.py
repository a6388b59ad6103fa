"""Import batches written side by side keep exactly what a one-at-a-time import keeps."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from crm.contacts import importer
from crm.contacts.import_reader import Row
from crm.contacts.models import Contact, ContactPhone
from crm.documents import DemographicsExtra
from crm.imports import batch_write, claims, credentials, pipeline, writer_processes
from crm.imports.prepare import Batch
from crm.runtime import Runtime
from crm.tenants.schemas import CreatedTenant


def _rows() -> list[Row]:
    """Eight two-row batches; later lines repeat ids and codes of earlier batches."""
    cells: list[dict[str, str | None]] = [
        {"id": "w-1", "code": "W1", "first_name": "One"},
        {"id": "w-2", "code": "W2", "first_name": "Two"},
        {"id": "w-3", "code": "W3", "first_name": "Three"},
        {"id": "w-1", "code": "W9", "first_name": "One again"},  # id of line 2
        {"id": "w-5", "code": "W2", "first_name": "Two's code"},  # code of line 3
        {"id": "w-6", "code": "W6", "first_name": "Six"},
        {"id": "w-7", "code": "W7", "first_name": "Seven"},
        {"id": "w-6", "code": "W8", "first_name": "Six again"},  # id of line 7
        {"id": "w-9", "first_name": "Nine", "phone": "99123456", "phone_country_code": "CYP"},
        {"id": "w-10", "first_name": "Ten"},
        {"id": "w-11", "first_name": "Eleven"},
        {"id": "w-12", "first_name": "Twelve"},
        {"id": "w-13", "first_name": "Thirteen"},
        {"id": "w-3", "first_name": "Three again"},  # id of line 4
        {"id": "w-15", "first_name": "Fifteen"},
        {"id": "w-16", "first_name": "Sixteen"},
    ]
    return [Row(line, row) for line, row in enumerate(cells, start=2)]


async def _import(
    runtime: Runtime, tenant: CreatedTenant, writers: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[pipeline.Summary, int, dict[str, str]]:
    in_flight: list[claims.Claims | None] = []
    most = 0
    write = batch_write.write

    async def watched(sessions: Any, clock: Any, batch: Batch, *args: Any) -> None:
        nonlocal most
        keys = claims.of_rows(
            [(p.line, {"id": p.given_id, "code": p.given_code}) for p in batch.prepared.rows]
        )
        # Nothing in flight beside this batch claims any of its keys.
        assert all(k is not None and keys is not None and k.isdisjoint(keys) for k in in_flight)
        in_flight.append(keys)
        most = max(most, len(in_flight))
        try:
            await asyncio.sleep(0.1)  # long enough for the next batches to be started beside it
            await write(sessions, clock, batch, *args)
        finally:
            in_flight.remove(keys)

    monkeypatch.setattr(batch_write, "write", watched)
    options = pipeline.Options(
        tenant_id=tenant.id, mode="live", actor="t", batch_size=2, writers=writers
    )
    summary = await pipeline.run(runtime.sessions, runtime.clock, _rows(), options)
    async with runtime.sessions() as session:
        names = dict(
            (
                await session.execute(
                    select(Contact.id, Contact.first_name).where(Contact.tenant_id == tenant.id)
                )
            ).all()
        )
    return summary, most, {k: v or "" for k, v in names.items()}


async def test_side_by_side_batches_keep_the_first_line_of_each_key(
    runtime: Runtime, tenant: CreatedTenant, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary, most, names = await _import(runtime, tenant, 3, monkeypatch)
    # PostgreSQL writes up to three batches at once; SQLite writes one transaction at a time.
    assert most == (3 if backend == "postgresql" else 1)
    assert (summary.seen, summary.created, summary.skipped, summary.rejected) == (16, 12, 4, [])
    # Each repeated id or code kept its first line, as a one-at-a-time import does.
    assert names["w-1"] == "One"
    assert names["w-3"] == "Three"
    assert names["w-6"] == "Six"
    assert "w-5" not in names
    assert len(names) == 12


async def test_one_writer_is_the_same_import(
    runtime: Runtime, tenant: CreatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary, most, names = await _import(runtime, tenant, 1, monkeypatch)
    assert most == 1
    assert (summary.created, summary.skipped) == (12, 4)
    assert names["w-1"] == "One" and names["w-6"] == "Six"


async def test_a_failed_batch_ends_the_import_after_the_others_commit(
    runtime: Runtime, tenant: CreatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = batch_write.write

    async def failing(sessions: Any, clock: Any, batch: Batch, *args: Any) -> None:
        if batch.last_line == 5:  # the second batch
            raise RuntimeError("the database went away")
        await asyncio.sleep(0.02)
        await write(sessions, clock, batch, *args)

    monkeypatch.setattr(batch_write, "write", failing)
    options = pipeline.Options(tenant_id=tenant.id, mode="live", actor="t", batch_size=2, writers=2)
    with pytest.raises(RuntimeError, match="went away"):
        await pipeline.run(runtime.sessions, runtime.clock, _rows(), options)
    async with runtime.sessions() as session:
        ids = set(
            (await session.scalars(select(Contact.id).where(Contact.tenant_id == tenant.id))).all()
        )
    # The batch before the failure committed whole, and so did a batch started beside the
    # failed one before its failure was known (lines 6-7 on PostgreSQL); nothing was started
    # after the failure.
    assert {"w-1", "w-2"} <= ids
    assert not ids & {"w-3", "w-7", "w-9", "w-10", "w-11", "w-12", "w-13", "w-15", "w-16"}
    assert ids <= {"w-1", "w-2", "w-6"}


def test_claims_are_the_ids_and_codes_as_the_import_reads_them() -> None:
    rows: list[tuple[int, dict[str, str | None]]] = [
        (2, {"id": " c-1 ", "code": "C1", "first_name": "Ann"}),
        (3, {"id": "'=c-2", "code": None}),  # export's formula escape
        (4, {"first_name": "Generated", "demographics": '{"gender": "FEMALE"}'}),
    ]
    assert claims.of_rows(rows) == frozenset({("id", "c-1"), ("code", "C1"), ("id", "=c-2")})


_DOCUMENT_COLUMNS = ("passport_number", "id_number", "statutory_number")


def _batch(rows: list[dict[str, str | None]]) -> Batch:
    result, prepared = importer.prepare_batch(
        list(enumerate(rows, start=2)), tenant_id="t", mode="live", now=None, rules={}
    )
    assert result.rejected == []
    return Batch(result, prepared, credentials.Hashes({}))


def test_claims_know_every_member_that_sets_a_document_number() -> None:
    """Document numbers are unique keys a row sets through its `demographics` cell: a batch
    giving one goes alone, and no other member or column sets one."""
    samples: dict[str, Any] = {
        "passport": {"number": "P-1"},
        "id_details": {"number": "I-1"},
        "statutory_number": "S-1",
        "name_day": {"month": 1, "day": 2},
    }
    assert set(samples) == set(DemographicsExtra.model_fields)  # a new member needs a sample
    for member, value in samples.items():
        cells: dict[str, str | None] = {"id": "d-1", "demographics": json.dumps({member: value})}
        contact = _batch([cells]).prepared.rows[0].contact
        sets_document = any(getattr(contact, c) is not None for c in _DOCUMENT_COLUMNS)
        assert sets_document == (member in claims.DOCUMENT_MEMBERS), member
        assert (claims.of_rows([(2, cells)]) is None) == sets_document, member
    # The contacts' last unique key is not something an import sets.
    assert "loyalty_identifiers" not in importer.KNOWN_COLUMNS


async def test_a_repeated_document_number_keeps_its_first_line(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    passport = json.dumps({"passport": {"number": "AB123"}})
    cells: list[dict[str, str | None]] = [
        {"id": "doc-1", "demographics": passport},
        {"id": "doc-2"},
        {"id": "doc-3"},
        {"id": "doc-4", "demographics": passport},  # the next batch, with line 2's passport
        {"id": "doc-5"},
        {"id": "doc-6"},
    ]
    rows = [Row(line, row) for line, row in enumerate(cells, start=2)]
    options = pipeline.Options(tenant_id=tenant.id, mode="live", actor="t", batch_size=3, writers=3)
    summary = await pipeline.run(runtime.sessions, runtime.clock, rows, options)
    assert summary.created == 5
    assert [r.line for r in summary.rejected] == [5]
    async with runtime.sessions() as session:
        holder = await session.scalar(
            select(Contact.id).where(
                Contact.tenant_id == tenant.id, Contact.passport_number.is_not(None)
            )
        )
    assert holder == "doc-1"


def test_a_batch_writing_identities_goes_alone() -> None:
    assert claims.of_rows([(2, {"id": "c-1", "password_hash": "$2b$04$x"})]) is None
    assert claims.of_rows([(2, {"id": "c-1", "password_hash": " "})]) == frozenset({("id", "c-1")})
    assert not claims.may_join(None, [])
    assert not claims.may_join(frozenset({("id", "a")}), [None])
    assert not claims.may_join(frozenset({("id", "a")}), [frozenset({("id", "a")})])
    assert claims.may_join(frozenset({("id", "a")}), [frozenset({("id", "b")})])


async def test_worker_processes_validate_and_write_the_same_rows(
    runtime: Runtime, tenant: CreatedTenant, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL two worker processes each validate and write batches on their own
    connections (on SQLite they only validate); the rows kept are still those of a
    one-at-a-time import."""
    options = pipeline.Options(
        tenant_id=tenant.id, mode="live", actor="t", batch_size=2, processes=2
    )
    bad = [Row(18, {"id": "w-18", "email_address": "not an email"})]
    pools: list[int] = []
    make_pool = writer_processes.pool

    def watched_pool(processes: int, settings: Any) -> Any:
        pools.append(processes)
        return make_pool(processes, settings)

    monkeypatch.setattr(writer_processes, "pool", watched_pool)
    summary = await pipeline.run(
        runtime.sessions, runtime.clock, [*_rows(), *bad], options, settings=runtime.settings
    )
    # The workers wrote on PostgreSQL; on SQLite they only validated.
    assert pools == ([2] if backend == "postgresql" else [])
    assert (summary.seen, summary.created, summary.skipped) == (17, 12, 4)
    assert [(r.line, r.reason.split(":")[0]) for r in summary.rejected] == [(18, "INVALID_EMAIL")]
    async with runtime.sessions() as session:
        names = dict(
            (
                await session.execute(
                    select(Contact.id, Contact.first_name).where(Contact.tenant_id == tenant.id)
                )
            ).all()
        )
        phones = await session.scalar(
            select(func.count())
            .select_from(ContactPhone)
            .where(ContactPhone.tenant_id == tenant.id)
        )
    assert names["w-1"] == "One" and names["w-3"] == "Three" and names["w-6"] == "Six"
    assert len(names) == 12 and phones == 1


def test_worker_processes_by_default_on_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    from crm.cli.contacts import _processes
    from crm.settings import Settings

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    secret = "s" * 48
    postgres = Settings(database_url="postgresql://h/db", secret_key=secret, _env_file=None)
    sqlite = Settings(database_url="sqlite:///x.db", secret_key=secret, _env_file=None)
    assert _processes(None, postgres) == 4
    assert _processes(None, sqlite) == 4
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert _processes(None, postgres) == 2
    assert _processes(None, sqlite) == 1
    assert _processes(0, postgres) == 0
