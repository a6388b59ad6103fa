"""Hot statements built once: the FOR UPDATE form per database, and the driver's argument order."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm.db import Locking
from crm.identities.models import Identity
from crm.pgpool import Compiled
from crm.ratelimits.service import _UPSERTS


def _session(dialect: str) -> AsyncSession:
    bind = SimpleNamespace(dialect=SimpleNamespace(name=dialect))
    return cast(AsyncSession, SimpleNamespace(get_bind=lambda: bind))


def test_locking_takes_row_locks_only_where_the_database_has_them() -> None:
    statement = Locking(select(Identity).where(Identity.id == bindparam("id")))
    on_postgres = str(statement.for_(_session("postgresql")).compile(dialect=postgresql.dialect()))
    on_sqlite = str(statement.for_(_session("sqlite")).compile(dialect=sqlite.dialect()))
    assert on_postgres.rstrip().endswith("FOR UPDATE")
    assert "FOR UPDATE" not in on_sqlite


def test_compiled_binds_named_values_and_the_statement_s_own_constants_in_order() -> None:
    upsert = Compiled(_UPSERTS[(True, True)])
    window = datetime(2026, 11, 29, 12, tzinfo=UTC)
    sql, args = upsert.sql_and_args({"bucket": "b", "window_start": window, "below": 7})
    assert sql.startswith("INSERT INTO rate_counters") and "ON CONFLICT" in sql
    placeholders = sql.count("$")
    assert len(args) == placeholders
    # Named values where the statement names them; its own constants (count 1, + 1) elsewhere.
    assert args[:2] == ["b", window] and 7 in args and args.count(1) == 2
    again: Any = upsert.sql_and_args({"bucket": "c", "window_start": window, "below": 9})
    assert again[0] is sql  # compiled once
