"""The SQLite database and its -wal and -shm files are private to their owner (0600)."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import text

from crm.db import create_engine
from crm.migrate import upgrade
from tests.conftest import base_settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_database_and_its_wal_files_are_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "crm.db"
    engine = create_engine(base_settings(database_url=f"sqlite:///{path}"), create=True)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (v TEXT)"))
            await connection.execute(text("INSERT INTO t VALUES ('x')"))
        async with engine.connect() as connection:
            # While a connection is open the -wal and -shm files exist.
            await connection.execute(text("SELECT v FROM t"))
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert all(f.exists() for f in files)
            assert [mode(f) for f in files] == [0o600, 0o600, 0o600]
    finally:
        await engine.dispose()


def test_db_upgrade_creates_the_database_0600(tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    upgrade(base_settings(database_url=f"sqlite:///{path}"))
    assert mode(path) == 0o600
