"""The file formats an import reads (CSV, JSON lines) and the one reader for each.

Both readers yield the same rows (a line number and the CSV cells of the row), so the format is
chosen here once and everything after (validation, batches, the job's progress) is shared.
"""

from __future__ import annotations

import io
from enum import StrEnum
from pathlib import PurePath
from typing import BinaryIO

from crm.contacts import import_jsonl, import_reader

JSONL_SUFFIXES = (".jsonl", ".ndjson")


class ImportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


def format_of_path(path: PurePath) -> ImportFormat:
    """JSON lines for a .jsonl or .ndjson file, CSV otherwise."""
    return ImportFormat.JSONL if path.suffix.lower() in JSONL_SUFFIXES else ImportFormat.CSV


def open_reader(
    fmt: ImportFormat, handle: BinaryIO, *, encoding: str, delimiter: str | None = None
) -> import_reader.Reader | import_jsonl.Reader:
    """A reader of a file whose encoding `import_reader.check_encoding` checked.

    Raises ImportFileError when the file cannot be imported as a whole (no CSV header, or a
    first line that is not a JSON object of import fields).
    """
    if fmt is ImportFormat.JSONL:
        if delimiter is not None:
            raise import_reader.ImportFileError("--delimiter is for CSV files, not JSON lines")
        import_jsonl.check_start(handle, encoding=encoding)
        return import_jsonl.Reader(handle, encoding=encoding)
    return import_reader.Reader(handle, encoding=encoding, delimiter=delimiter)


def check_file(content: bytes, fmt: ImportFormat, *, encoding: str) -> None:
    """Refuse, before anything is stored, a file that cannot be imported as a whole."""
    handle = io.BytesIO(content)
    import_reader.check_encoding(handle, encoding)
    open_reader(fmt, handle, encoding=encoding)
