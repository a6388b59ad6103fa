"""Database engines for SQLite and PostgreSQL, the ORM base and portable column types."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from crm.settings import Settings

# Named constraints keep Alembic migrations deterministic on both dialects.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both dialects (SQLite drops the zone on the way back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use crm.clock")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
PortableJSON = JSON().with_variant(JSONB(), "postgresql")


def async_url(url: str) -> str:
    """Map the plain URLs users write to the async drivers (users need not know driver names)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if base in {"postgresql", "postgres"}:
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"unsupported database: {scheme}")


class DatabaseMissing(Exception):
    """A SQLite database that does not exist where the settings point.

    SQLite creates any file it is asked to open, so a command run from another directory with the
    default relative path would silently start a second, empty database (and a new development
    secret beside it). Only `crm db upgrade` creates the database; everything else refuses.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        super().__init__(
            f"No database at {self.path} (CRM_DATABASE_URL, relative to the current directory "
            f"{Path.cwd()}): run `crm db upgrade` there first, or point CRM_DATABASE_URL at "
            "the existing database."
        )


def create_engine(settings: Settings, *, create: bool = False) -> AsyncEngine:
    """An engine for the configured database; a missing SQLite file is an error unless `create`."""
    url = async_url(settings.database_url)
    # A database error's text otherwise quotes the statement's parameters, and the last-resort
    # handler logs it: an outbox insert would put a one-time code or reset token in the log.
    kwargs: dict[str, Any] = {"hide_parameters": True}
    if settings.is_sqlite:
        path = settings.sqlite_path()
        if path is not None and create:
            create_private_file(path)
        elif path is not None and not path.exists():
            raise DatabaseMissing(path)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        # No overflow: an overflow connection is closed when it is given back, so a load just
        # above the pool's size opened and closed connections all the time (measured: 189 in
        # 15 s of sign-ups at 32 at once), each paying the connection's set-up and preparing
        # every statement again. A request waits for a connection instead (PoolTimeout: 503).
        kwargs.update(pool_size=settings.db_pool_size, max_overflow=0)
        server_settings = {"application_name": "crm"}
        if settings.db_statement_timeout_ms:
            server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
        kwargs["connect_args"] = {"server_settings": server_settings}
    engine = create_async_engine(url, **kwargs)
    if settings.is_sqlite:
        _configure_sqlite(engine)
    else:
        _ping_idle_connections(engine, settings.db_ping_idle_seconds)
    return engine


def _ping_idle_connections(engine: AsyncEngine, idle_seconds: float) -> None:
    """Check a pooled connection before use only when it sat idle for `idle_seconds` or more.

    `pool_pre_ping` checks every checkout, which on asyncpg is three round trips (BEGIN, a ping,
    ROLLBACK): under load, more than the work of a short request. A connection returned to the
    pool a moment ago is almost surely alive; one that sat through a quiet spell may have been cut
    by a database restart, a failover or an idle timeout. If a busy connection is cut anyway, the
    request that meets it fails with 503 and SQLAlchemy invalidates the whole pool, so the next
    ones reconnect: no accepted work is lost.
    """
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError("connection lost while idle") from exc


def create_private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600), if it does not exist yet.

    SQLite creates a missing database with the process umask (usually 0644: anyone on the host
    reads every contact), and gives its -wal and -shm files the mode of the database file, so
    making the database first, private, keeps all three private.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the driver so BEGIN IMMEDIATE can be issued below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # SQLite allows one writer. A deferred transaction that later writes can fail at once with
        # SQLITE_BUSY (no busy wait on lock upgrade); taking the write lock up front makes writers
        # queue politely on busy_timeout instead. Read-only work (see read_connection) needs no lock.
        if conn.get_execution_options().get("crm_read_only"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


@asynccontextmanager
async def read_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection for read-only queries on the hot path: no ORM session, no write lock."""
    async with engine.connect() as connection:
        yield await connection.execution_options(crm_read_only=True)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
