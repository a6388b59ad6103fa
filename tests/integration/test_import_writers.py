"""Import batches written side by side keep exactly what a one-at-a-time import keeps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from crm.contacts import importer
from crm.contacts.import_reader import Row
from crm.contacts.models import Contact
from crm.imports import claims, credentials, pipeline
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
    write = pipeline._write

    async def watched(sessions: Any, clock: Any, batch: Batch, *args: Any) -> None:
        nonlocal most
        keys = claims.of(batch)
        # Nothing in flight beside this batch claims any of its keys.
        assert all(k is not None and keys is not None and k.isdisjoint(keys) for k in in_flight)
        in_flight.append(keys)
        most = max(most, len(in_flight))
        try:
            await asyncio.sleep(0.1)  # long enough for the next batches to be started beside it
            await write(sessions, clock, batch, *args)
        finally:
            in_flight.remove(keys)

    monkeypatch.setattr(pipeline, "_write", watched)
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
    write = pipeline._write

    async def failing(sessions: Any, clock: Any, batch: Batch, *args: Any) -> None:
        if batch.last_line == 5:  # the second batch
            raise RuntimeError("the database went away")
        await asyncio.sleep(0.02)
        await write(sessions, clock, batch, *args)

    monkeypatch.setattr(pipeline, "_write", failing)
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


def _batch(rows: list[dict[str, str | None]], hashes: dict[int, str] | None = None) -> Batch:
    result, prepared = importer.prepare_batch(
        list(enumerate(rows, start=2)), tenant_id="t", mode="live", now=None, rules={}
    )
    assert result.rejected == []
    return Batch(result, prepared, credentials.Hashes(hashes or {}))


def test_claims_list_every_unique_key_of_a_contact() -> None:
    keys = claims.of(_batch([{"id": "c-1", "code": "C1"}]))
    assert keys == {("id", "c-1"), ("code", "C1")}
    # A generated id and code are claimed too.
    generated = claims.of(_batch([{"first_name": "Ann"}]))
    assert generated is not None and {kind for kind, _ in generated} == {"id", "code"}
    # The contacts' other unique keys are not import columns; if one becomes one, the claims
    # must list it.
    unique_elsewhere = {"passport_number", "id_number", "statutory_number", "loyalty_identifiers"}
    assert not unique_elsewhere & importer.KNOWN_COLUMNS


def test_a_batch_writing_identities_goes_alone() -> None:
    assert claims.of(_batch([{"id": "c-1"}], hashes={2: "$2b$04$x"})) is None
    assert not claims.may_join(None, [])
    assert not claims.may_join(frozenset({("id", "a")}), [None])
    assert not claims.may_join(frozenset({("id", "a")}), [frozenset({("id", "a")})])
    assert claims.may_join(frozenset({("id", "a")}), [frozenset({("id", "b")})])
