"""Units of work: the session scope and its commit, which write a session's new and changed
rows in one round trip on PostgreSQL.

SQLAlchemy's unit of work sends one statement per table and per changed row, each through its
execution layer; a registration writes seven tables, a code's validation four. On this path the
rows are plain (every value known here, no relationships to cascade, nothing deleted), so they
go as one statement: each INSERT and UPDATE a part of one `WITH` statement. PostgreSQL runs all
the parts against one snapshot and checks the foreign keys at the end of the statement, so the
order of the parts does not matter; no two parts touch the same row (a new row is inserted, a
loaded one updated by its key, once). A row whose key the database generates (a contact's) is
inserted first, on its own, for its key.

Anything else (deletions, relationships, a value only the database's default gives, more rows
than one statement should carry, SQLite) takes `Session.flush()`: this is an optimisation of
the common case, never a second behaviour.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from sqlalchemy import Column, Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm import driver
from crm.db import Base

_QUOTE = driver.DIALECT.identifier_preparer


class _Part:
    """One INSERT (of `rows` rows) or UPDATE (of `columns` by the key) as SQL text from a
    parameter number on: a part's text depends on where it sits in the statement."""

    __slots__ = ("columns", "rows", "table", "update")

    def __init__(self, table: Table, columns: tuple[Column[Any], ...], rows: int, update: bool):
        self.table, self.columns, self.rows, self.update = table, columns, rows, update

    def key(self) -> tuple[Any, ...]:
        return (self.table.name, tuple(c.name for c in self.columns), self.rows, self.update)

    def sql(self, first: int) -> str:
        table = _QUOTE.format_table(self.table)
        if self.update:
            keys = list(self.table.primary_key)
            sets = ", ".join(
                f"{_QUOTE.quote(c.name)} = ${first + n}" for n, c in enumerate(self.columns)
            )
            start = first + len(self.columns)
            where = " AND ".join(
                f"{_QUOTE.quote(c.name)} = ${start + n}" for n, c in enumerate(keys)
            )
            return f"UPDATE {table} SET {sets} WHERE {where}"  # noqa: S608 - the schema's names
        names = ", ".join(_QUOTE.quote(c.name) for c in self.columns)
        width = len(self.columns)
        rows = ", ".join(
            "(" + ", ".join(f"${first + r * width + n}" for n in range(width)) + ")"
            for r in range(self.rows)
        )
        return f"INSERT INTO {table} ({names}) VALUES {rows}"  # noqa: S608 - the schema's names

    def size(self) -> int:
        if self.update:
            return len(self.columns) + len(self.table.primary_key)
        return len(self.columns) * self.rows


# The statements' texts, by the shape of what they write: a few shapes recur (a registration,
# a validation, a refresh), and the rest are bounded out.
_STATEMENTS: OrderedDict[tuple[Any, ...], str] = OrderedDict()
_STATEMENTS_KEPT = 256
# One statement carries at most this many rows and values; more take the ORM's flush (the
# protocol allows 32,767 parameters, and a huge WITH helps nobody).
_MAX_ROWS = 200
_MAX_VALUES = 5000
_ORDER: dict[Table, int] = {}


def _statement(parts: Sequence[_Part]) -> str:
    key = tuple(part.key() for part in parts)
    sql = _STATEMENTS.get(key)
    if sql is not None:
        _STATEMENTS.move_to_end(key)
        return sql
    texts, first = [], 1
    for part in parts:
        texts.append(part.sql(first))
        first += part.size()
    *ctes, main = texts
    prefix = ", ".join(f"w{n} AS ({text})" for n, text in enumerate(ctes))
    sql = _STATEMENTS[key] = f"WITH {prefix} {main}" if ctes else main
    if len(_STATEMENTS) > _STATEMENTS_KEPT:
        _STATEMENTS.popitem(last=False)
    return sql


def _order(table: Table) -> int:
    if not _ORDER:
        _ORDER.update({t: n for n, t in enumerate(Base.metadata.sorted_tables)})
    return _ORDER[table]


def _plain(db: AsyncSession) -> bool:
    """Whether `db`'s pending changes are new and changed rows only, each value known here,
    and few enough for one statement."""
    if db.deleted:
        return False
    new, dirty = db.new, db.dirty
    if len(new) + len(dirty) > _MAX_ROWS:
        return False
    # At most every column of each row (an UPDATE writes the changed ones and the key).
    values = sum(len(driver.shape_of(type(obj)).columns) for obj in (*new, *dirty))
    if values > _MAX_VALUES:
        return False
    for obj in new:
        shape = driver.shape_of(type(obj))
        state: Any = obj._sa_instance_state
        for attr, column in shape.columns:
            if attr in state.dict or column is shape.generated:
                continue
            default: Any = column.default
            if default is None and column.server_default is not None:
                return False
            if default is not None and not (default.is_callable or default.is_scalar):
                return False
        if any(key in state.dict for key in shape.relationships):
            return False
    return True


def _new_values(obj: Any, shape: driver.Shape) -> list[tuple[Column[Any], Any]]:
    """The row of a new object, its Python-side defaults applied to it as the ORM would."""
    state: Any = obj._sa_instance_state
    values = []
    for attr, column in shape.columns:
        if column is shape.generated and attr not in state.dict:
            continue
        if attr in state.dict:
            value = state.dict[attr]
        else:
            default: Any = column.default
            value = (
                None
                if default is None
                else (default.arg(None) if default.is_callable else default.arg)
            )
            setattr(obj, attr, value)
        values.append((column, value))
    return values


async def flush(db: AsyncSession) -> None:
    """`db.flush()`; on PostgreSQL, plain new and changed rows in one statement."""
    connection = await driver.connection(db)
    if connection is None or not _plain(db):
        await db.flush()
        return
    new = sorted(db.new, key=lambda obj: _order(driver.shape_of(type(obj)).table))
    dirty = [obj for obj in db.dirty if db.is_modified(obj)]
    parts: list[_Part] = []
    args: list[Any] = []
    inserts: dict[tuple[Table, tuple[Column[Any], ...]], list[list[Any]]] = {}
    for obj in new:
        shape = driver.shape_of(type(obj))
        values = _new_values(obj, shape)
        if shape.generated is not None and shape.generated.name not in {c.name for c, _ in values}:
            await _insert_returning(db, connection, obj, shape, values)
            continue
        columns = tuple(c for c, _ in values)
        inserts.setdefault((shape.table, columns), []).append(
            [driver.bound(c.type, v) for c, v in values]
        )
    for (table, columns), rows in inserts.items():
        parts.append(_Part(table, columns, len(rows), update=False))
        for row in rows:
            args.extend(row)
    for obj in dirty:
        shape = driver.shape_of(type(obj))
        state: Any = obj._sa_instance_state
        changed = [(c, state.dict[a]) for a, c in shape.columns if a in state.committed_state]
        if not changed:
            continue
        parts.append(_Part(shape.table, tuple(c for c, _ in changed), 1, update=True))
        args.extend(driver.bound(c.type, v) for c, v in changed)
        for column in shape.table.primary_key:
            attr = shape.mapper.get_property_by_column(column).key
            args.append(
                driver.bound(column.type, state.committed_state.get(attr, state.dict[attr]))
            )
    if parts:
        sql = _statement(parts)
        try:
            await connection.execute(sql, *args)
        except driver.ERRORS as exc:
            raise await driver.failed(db, sql, exc) from exc
    _written(db, new, dirty)


async def _insert_returning(
    db: AsyncSession,
    connection: Any,
    obj: Any,
    shape: driver.Shape,
    values: list[tuple[Column[Any], Any]],
    *,
    unless_taken: bool = False,
) -> bool:
    """Insert one row and set its generated key on `obj`; with `unless_taken`, a row that
    would break a unique key is not inserted (False) instead of failing the transaction."""
    part = _Part(shape.table, tuple(c for c, _ in values), 1, update=False)
    generated = cast(Column[Any], shape.generated)
    conflict = " ON CONFLICT DO NOTHING" if unless_taken else ""
    sql = f"{part.sql(1)}{conflict} RETURNING {_QUOTE.quote(generated.name)}"
    try:
        key = await connection.fetchval(sql, *(driver.bound(c.type, v) for c, v in values))
    except driver.ERRORS as exc:
        raise await driver.failed(db, sql, exc) from exc
    if key is None:
        return False
    setattr(obj, shape.mapper.get_property_by_column(generated).key, key)
    return True


async def add_unless_taken(db: AsyncSession, obj: Any) -> bool:
    """Add `obj` (a new row whose key the database generates) and write it now, unless one of
    its table's unique keys is taken: then nothing is written and False is returned, and the
    transaction goes on. PostgreSQL says so in the INSERT (ON CONFLICT DO NOTHING); elsewhere a
    savepoint takes the failed INSERT back."""
    connection = await driver.connection(db)
    shape = driver.shape_of(type(obj))
    if connection is None or shape.generated is None:
        try:
            async with db.begin_nested():
                db.add(obj)
        except IntegrityError:
            return False
        return True
    values = _new_values(obj, shape)
    if not await _insert_returning(db, connection, obj, shape, values, unless_taken=True):
        return False
    db.add(obj)
    _written(db, [obj], [])
    return True


def _written(db: AsyncSession, new: list[Any], dirty: list[Any]) -> None:
    """Mark what was written as the unit of work does after its own flush: persistent (in the
    identity map, and known to the transaction, so a rollback takes new ones out again) and
    clean. It is the unit of work's own step, private to SQLAlchemy, called the same way."""
    states = {obj._sa_instance_state for obj in new} | {obj._sa_instance_state for obj in dirty}
    if states:
        db.sync_session._register_persistent(states)


@asynccontextmanager
async def session_scope(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: committed (through `commit`) at the end, rolled back on any exception."""
    async with factory() as session:
        try:
            yield session
            await commit(session)
        except BaseException:
            await session.rollback()
            raise


async def commit(db: AsyncSession) -> None:
    """Write what is pending (as `flush`), then commit."""
    if db.new or db.dirty:
        await flush(db)
    await db.commit()
