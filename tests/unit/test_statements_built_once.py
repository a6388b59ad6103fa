"""Hot statements built once: the FOR UPDATE form per database, and the driver's argument order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects import postgresql, sqlite

from crm import driver
from crm.identities.models import Identity
from crm.ratelimits.service import _UPSERTS


def test_a_locked_select_takes_row_locks_only_where_the_database_has_them() -> None:
    statement = driver.rows_of(Identity, Identity.id == bindparam("id"), lock=True).statement
    on_postgres = str(statement.compile(dialect=postgresql.dialect()))
    on_sqlite = str(statement.compile(dialect=sqlite.dialect()))
    assert on_postgres.rstrip().endswith("FOR UPDATE")
    assert "FOR UPDATE" not in on_sqlite


def test_statements_bind_named_values_and_their_own_constants_in_order() -> None:
    upsert = driver.Statement(_UPSERTS[(True, True)])
    window = datetime(2026, 11, 29, 12, tzinfo=UTC)
    sql, args = upsert.sql_and_args({"bucket": "b", "window_start": window, "below": 7})
    assert sql.startswith("INSERT INTO rate_counters") and "ON CONFLICT" in sql
    placeholders = sql.count("$")
    assert len(args) == placeholders
    # Named values where the statement names them; its own constants (count 1, + 1) elsewhere.
    assert args[:2] == ["b", window] and 7 in args and args.count(1) == 2
    again: Any = upsert.sql_and_args({"bucket": "c", "window_start": window, "below": 9})
    assert again[0] is sql  # compiled once
