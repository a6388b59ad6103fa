"""Where contact pictures live: a small storage interface, its local-directory backend (the S3
one is crm.media_s3), and the file operations a unit of work owes once it commits or rolls back.

Files are not transactional, the database is. So a new picture is written before the commit
under a fresh name (a rollback removes it again), and a replaced or erased picture's file is
removed only after the commit that stopped referring to it: a failed request never leaves a
contact pointing at a missing file. Services only record names in `session.info`; the commit
points (api.deps) settle them with the store, as they do for the outbox wake-up.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Protocol

from crm.settings import Settings

# What a stored name looks like: 128 random bits and the extension of the checked type. Nothing
# about the contact is in it, and a name outside this pattern is never looked up, so a path
# (`../`, a slash, an absolute path, a NUL) cannot reach the filesystem.
NAME_PATTERN = re.compile(r"[0-9a-f]{32}\.(?:png|jpg|webp)")
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}

WRITTEN = "crm.media_written"
REMOVED = "crm.media_removed"


class MediaStore(Protocol):
    """A place for named, immutable blobs (a name is never reused, so nothing is overwritten)."""

    async def put(self, name: str, data: bytes) -> None: ...

    async def get(self, name: str) -> bytes | None: ...

    async def remove(self, name: str) -> None: ...

    def url(self, name: str) -> str: ...


def new_name(extension: str) -> str:
    return f"{secrets.token_hex(16)}.{extension}"


def valid_name(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None


class LocalMediaStore:
    """Files in one directory, written whole (temporary file, then rename) and read by name."""

    def __init__(self, directory: Path, base_url: str) -> None:
        self.directory = directory
        self.base_url = base_url.rstrip("/")

    def _path(self, name: str) -> Path:
        if not valid_name(name):
            raise ValueError("not a media name")
        return self.directory / name

    def _write(self, name: str, data: bytes) -> None:
        target = self._path(name)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(temp, 0o644)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def _read(self, name: str) -> bytes | None:
        if not valid_name(name):
            return None
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None

    def _unlink(self, name: str) -> None:
        if valid_name(name):
            self._path(name).unlink(missing_ok=True)

    # File calls run in a worker thread: the request path never blocks on the disk.
    async def put(self, name: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, name, data)

    async def get(self, name: str) -> bytes | None:
        return await asyncio.to_thread(self._read, name)

    async def remove(self, name: str) -> None:
        await asyncio.to_thread(self._unlink, name)

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


def media_base_url(settings: Settings) -> str:
    return settings.media_public_url or f"{settings.public_url.rstrip('/')}/media"


def media_store(settings: Settings) -> MediaStore:
    """The configured store: a local directory, or an S3-compatible bucket."""
    if settings.media_backend == "s3":
        from crm.media_s3 import S3MediaStore  # its module imports this one

        secret = settings.media_s3_secret_access_key
        return S3MediaStore(
            endpoint=settings.media_s3_endpoint or "",
            bucket=settings.media_s3_bucket or "",
            region=settings.media_s3_region,
            access_key_id=settings.media_s3_access_key_id or "",
            secret_access_key=secret.get_secret_value() if secret else "",
            base_url=media_base_url(settings),
        )
    return LocalMediaStore(Path(settings.media_dir), media_base_url(settings))


def record(info: MutableMapping[str, Any], key: str, name: str) -> None:
    """Note a file the unit of work wrote (WRITTEN) or stopped referring to (REMOVED)."""
    info.setdefault(key, []).append(name)


async def settle(info: MutableMapping[str, Any], store: MediaStore, *, committed: bool) -> None:
    """After the unit of work: drop what it no longer refers to, or what it wrote in vain."""
    names: list[str] = info.pop(REMOVED if committed else WRITTEN, [])
    info.pop(WRITTEN if committed else REMOVED, None)
    for name in names:
        await store.remove(name)
