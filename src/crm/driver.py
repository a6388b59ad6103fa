"""The hot paths' statements on the driver connection of the session's own transaction.

Why: on PostgreSQL, SQLAlchemy's execution, result and unit-of-work layers cost several times
the CPU of the statement itself (measured per statement in process: an ORM select about 136 us,
the same through a Core connection 92 us, on the asyncpg connection 36 us; a registration's
flush of seven rows more than all its reads together). The sign-up flows run about 35
statements, so that overhead, not the database, bounded a server process's rate.

So the flows' hot statements are Core statements built once, compiled once for asyncpg
(`Statement`), and run on the asyncpg connection under the session, inside the transaction the
session opened: the same connection, the same transaction, the same commit or rollback. Rows
that the flows go on to change as ORM objects are attached to the session as if loaded
(`load`, `adopt`); `crm.unit_of_work` writes new and changed objects back. On SQLite every call
goes through the session unchanged: the fast path is a PostgreSQL optimisation, never a second
behaviour.

Errors keep SQLAlchemy's shape (IntegrityError, DBAPIError with the driver's error as `orig`),
so callers and the API's error handlers treat them as they treat the session's; a connection
lost under a statement is invalidated and answered 503, as the engine does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any, TypeVar, cast

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Table, bindparam, inspect, or_, select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from crm.db import Base
from crm.errors import ServiceUnavailable

_M = TypeVar("_M", bound=Base)
DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]
# The session's cached driver connection: (its SessionTransaction, the adapter, asyncpg's).
_CACHED = "crm_driver_connection"


def bound(type_: Any, value: Any) -> Any:
    """`value` as the driver takes it for a column of `type_`: through the type's bind
    processor, as the ORM would send it (JSON as text, the UTC rule for times)."""
    if value is None:
        return None
    processor = type_._cached_bind_processor(DIALECT)
    return value if processor is None else processor(value)


class Statement:
    """A Core statement compiled for asyncpg on first use: its SQL, its parameters in the
    driver's positional order with their types, and its own constants."""

    __slots__ = ("_binds", "_sql", "statement")

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._sql: str | None = None
        self._binds: tuple[tuple[str, Any, Any], ...] = ()

    def sql_and_args(self, values: Mapping[str, Any]) -> tuple[str, list[Any]]:
        if self._sql is None:
            compiled = self.statement.compile(dialect=DIALECT)
            binds = []
            for name in compiled.positiontup or ():
                binds.append((name, compiled.params.get(name), compiled.binds[name].type))
            sql = str(compiled)
            if "POSTCOMPILE" in sql:
                raise ValueError("an expanding IN cannot be compiled once: use any_of")
            self._binds = tuple(binds)
            self._sql = sql
        args = [
            bound(type_, values[name] if name in values else fixed)
            for name, fixed, type_ in self._binds
        ]
        return self._sql, args


async def connection(db: AsyncSession) -> Any | None:
    """The asyncpg connection of `db`'s transaction, begun if need be; None on SQLite."""
    if db.get_bind().dialect.name != "postgresql":
        return None
    transaction = db.sync_session.get_transaction()
    cached = db.info.get(_CACHED)
    if cached is not None and transaction is not None and cached[0] is transaction:
        if cached[1]._transaction is not None:
            return cached[2]
    session_connection = await db.connection()
    raw = await session_connection.get_raw_connection()
    adapter: Any = raw.dbapi_connection
    # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement it runs; a
    # statement sent straight to the driver before that would run outside the transaction.
    if adapter._transaction is None:
        await adapter._start_transaction()
    db.info[_CACHED] = (db.sync_session.get_transaction(), adapter, raw.driver_connection)
    return raw.driver_connection


async def failed(db: AsyncSession, sql: str, exc: BaseException) -> BaseException:
    """The exception to raise for the driver's `exc` (one of `ERRORS`) from `sql`."""
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(sql, None, exc)
    if isinstance(exc, asyncpg.PostgresError):
        return DBAPIError(sql, None, exc)
    # Cut under the statement: discard the connection, as the engine does, and answer 503.
    with suppress(Exception):  # the connection is gone either way
        await (await db.connection()).invalidate()
    return ServiceUnavailable()


ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


async def fetch(
    db: AsyncSession, statement: Statement, values: Mapping[str, Any]
) -> Sequence[Mapping[str, Any]]:
    """All rows of `statement` with `values`, by column name."""
    driver = await connection(db)
    if driver is None:
        rows = (await db.execute(statement.statement, dict(values))).mappings().all()
        return cast(Sequence[Mapping[str, Any]], rows)
    sql, args = statement.sql_and_args(values)
    try:
        return cast(Sequence[Mapping[str, Any]], await driver.fetch(sql, *args))
    except ERRORS as exc:
        raise await failed(db, sql, exc) from exc


async def fetchrow(
    db: AsyncSession, statement: Statement, values: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The first row of `statement` with `values`, or None."""
    driver = await connection(db)
    if driver is None:
        row = (await db.execute(statement.statement, dict(values))).mappings().first()
        return cast(Mapping[str, Any] | None, row)
    sql, args = statement.sql_and_args(values)
    try:
        return cast(Mapping[str, Any] | None, await driver.fetchrow(sql, *args))
    except ERRORS as exc:
        raise await failed(db, sql, exc) from exc


async def execute(db: AsyncSession, statement: Statement, values: Mapping[str, Any]) -> None:
    """Run `statement` for its effect."""
    driver = await connection(db)
    if driver is None:
        await db.execute(statement.statement, dict(values))
        return
    sql, args = statement.sql_and_args(values)
    try:
        await driver.execute(sql, *args)
    except ERRORS as exc:
        raise await failed(db, sql, exc) from exc


# --- ORM objects without the unit of work -------------------------------------------------


class Shape:
    """A mapped class's columns and attribute names, worked out once."""

    __slots__ = ("columns", "generated", "mapper", "relationships", "table")

    def __init__(self, model: type[Base]) -> None:
        mapper: Mapper[Any] = inspect(model)
        self.mapper = mapper
        self.table = cast(Table, mapper.local_table)
        self.columns = [(mapper.get_property_by_column(c).key, c) for c in self.table.columns]
        self.relationships = [rel.key for rel in mapper.relationships]
        # A key the database generates (contacts.pk), which an INSERT must return.
        generated = [c for c in self.table.primary_key if c.autoincrement is True]
        self.generated = generated[0] if len(generated) == 1 else None


_SHAPES: dict[type[Any], Shape] = {}


def shape_of(model: type[Any]) -> Shape:
    shape = _SHAPES.get(model)
    if shape is None:
        shape = _SHAPES[model] = Shape(model)
    return shape


def adopt(db: AsyncSession, model: type[_M], row: Mapping[str, Any], *, refresh: bool) -> _M:
    """The ORM object of `row` in `db`, as if the session had loaded it: the one already in
    the session if any (its values replaced by the row's when `refresh`, as
    `populate_existing` does), else a new persistent one."""
    shape = shape_of(model)
    key = shape.mapper.identity_key_from_primary_key(
        tuple(row[c.name] for c in shape.table.primary_key)
    )
    existing = db.identity_map.get(key)
    if existing is not None:
        if refresh:
            for attr, column in shape.columns:
                set_committed_value(existing, attr, row[column.name])
        return cast(_M, existing)
    obj = shape.mapper.class_manager.new_instance()
    # Straight into the instance's dict, as SQLAlchemy's own loading does: no attribute events,
    # no history (an attribute set through the instrumentation costs several times as much).
    obj.__dict__.update({attr: row[column.name] for attr, column in shape.columns})
    make_transient_to_detached(obj)
    db.add(obj)
    return cast(_M, obj)


def any_of(column: Any, values: Sequence[Any]) -> Any:
    """`column IN values` for a `Statement`: an IN list of constants is expanded per execution
    by SQLAlchemy, which a statement compiled once cannot be; equalities joined by OR are the
    same condition to the planner."""
    return or_(*(column == value for value in values))


def table_of(model: type[Base]) -> Table:
    """The table a model is mapped to."""
    return cast(Table, inspect(model).local_table)


def rows_of(model: type[Base], *criteria: Any, lock: bool = False) -> Statement:
    """A select of `model`'s table's rows where `criteria` (bound parameters), built once;
    `lock`: FOR UPDATE (SQLite's compiler leaves it out: its write transaction admits one
    writer already)."""
    statement = select(table_of(model)).where(*criteria)
    return Statement(statement.with_for_update() if lock else statement)


def held(db: AsyncSession, model: type[_M], key: Any) -> _M | None:
    """The `model` object with primary key `key` that `db` already holds, if any (as
    `Session.get` looks first)."""
    mapper: Mapper[Any] = inspect(model)
    return cast(_M | None, db.identity_map.get(mapper.identity_key_from_primary_key((key,))))


def refreshed(db: AsyncSession, model: type[Base], keys: Sequence[Any], **values: Any) -> None:
    """Give the `model` objects of `keys` that `db` holds the `values` a statement just wrote."""
    mapper: Mapper[Any] = inspect(model)
    for key in keys:
        existing = db.identity_map.get(mapper.identity_key_from_primary_key((key,)))
        if existing is not None:
            for attr, value in values.items():
                set_committed_value(existing, attr, value)


class Among:
    """`rows_of(model, column IN (values), *criteria)`, one `Statement` per count of values
    (a compiled statement has a fixed number of parameters)."""

    __slots__ = ("_column", "_criteria", "_model", "_statements")

    def __init__(self, model: type[Base], column: Any, *criteria: Any) -> None:
        self._model, self._column, self._criteria = model, column, criteria
        self._statements: dict[int, Statement] = {}

    def bound(self, values: Sequence[Any]) -> tuple[Statement, dict[str, Any]]:
        """The statement for `values` and its parameters (`among0`, `among1`, ...)."""
        statement = self._statements.get(len(values))
        if statement is None:
            names: list[Any] = [bindparam(f"among{n}") for n in range(len(values))]
            statement = rows_of(
                self._model, or_(*(self._column == n for n in names)), *self._criteria
            )
            self._statements[len(values)] = statement
        return statement, {f"among{n}": value for n, value in enumerate(values)}


async def load(
    db: AsyncSession,
    model: type[_M],
    statement: Statement,
    values: Mapping[str, Any],
    *,
    refresh: bool = False,
) -> _M | None:
    """The `model` object of the first row of `statement` (which selects the model's table),
    attached to `db`; None when there is no row."""
    row = await fetchrow(db, statement, values)
    return None if row is None else adopt(db, model, row, refresh=refresh)
