"""Strict, streaming reading of an import file: encoding, delimiter, header and row shape.

Every problem names its line: a file that cannot be read as a whole (wrong encoding, no header,
a header naming no known column) is an `ImportFileError`; a row that cannot be read (a different
number of cells than the header, an unclosed quote) is yielded as a `BadRow` so the import
rejects it and carries on. Nothing here touches the database.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from crm.contacts.importer import KNOWN_COLUMNS

EMPTY_ROW = "EMPTY_ROW"
DELIMITERS = ",;\t|"
# How much is read per step when checking the encoding before the import starts.
_CHUNK = 1 << 20


class ImportFileError(Exception):
    """The file as a whole cannot be imported; the message names the line."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    cells: dict[str, str | None]


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str


def check_encoding(handle: BinaryIO, encoding: str) -> int:
    """Decode the whole file once (before anything is written); return its number of lines.

    Raises ImportFileError naming the first line with a byte the encoding cannot decode.
    """
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    except LookupError:
        raise ImportFileError(f"unknown encoding {encoding!r}") from None
    lines = 0
    while chunk := handle.read(_CHUNK):
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            line = lines + chunk.count(b"\n", 0, exc.start) + 1
            byte = chunk[exc.start : exc.start + 1].hex().upper()
            raise ImportFileError(
                f"line {line}: byte 0x{byte} is not valid {encoding}; "
                "give the file's encoding with --encoding (for example --encoding latin-1)"
            ) from None
        lines += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ImportFileError(
            f"line {lines + 1}: the file ends inside a character that is not valid {encoding}"
        ) from None
    handle.seek(0)
    return lines


def detect_delimiter(header: str) -> str:
    """The delimiter of a header line among `,;<tab>|` (comma when nothing else fits)."""
    try:
        return csv.Sniffer().sniff(header, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


class Reader:
    """The rows of an import file in order, with their line numbers and the bytes read so far."""

    def __init__(self, handle: BinaryIO, *, encoding: str, delimiter: str | None) -> None:
        self._handle = handle
        self._encoding = encoding
        self.bytes_read = 0
        self._line = 0
        first = self._next_line()
        if first is None or not first.strip():
            raise ImportFileError("line 1: the file has no header row (it is empty)")
        first = first.lstrip("\ufeff")
        if delimiter is None:
            delimiter = detect_delimiter(first)
        elif len(delimiter) != 1:
            raise ImportFileError("--delimiter must be a single character")
        self.delimiter = delimiter
        header = [name.strip() for name in next(csv.reader([first], delimiter=delimiter), [])]
        known = [name for name in header if name in KNOWN_COLUMNS]
        if not known:
            raise ImportFileError(
                f"line 1: the header names no known column ({_preview(header)}); the first "
                "line must name the columns, for example id,code,first_name,last_name,"
                "email_address,phone (see `crm contacts import --help`)"
            )
        repeated = sorted({name for name in header if header.count(name) > 1 and name})
        if repeated:
            raise ImportFileError(f"line 1: the header repeats {', '.join(repeated)}")
        self.header = header
        self.unknown = [name for name in header if name not in KNOWN_COLUMNS]

    def _next_line(self) -> str | None:
        raw = self._handle.readline()
        if not raw:
            return None
        self.bytes_read += len(raw)
        self._line += 1
        # The encoding was checked over the whole file first (check_encoding).
        return raw.decode(self._encoding)

    def _lines(self) -> Iterator[str]:
        encoding = self._encoding
        for raw in self._handle:
            self.bytes_read += len(raw)
            self._line += 1
            # The encoding was checked over the whole file first (check_encoding).
            yield raw.decode(encoding)

    def __iter__(self) -> Iterator[Row | BadRow]:
        width = len(self.header)
        header = self.header
        # One reader for the file: after an error it starts the next record on the next line
        # (the csv module resets its state per record), as a fresh reader per record did.
        parser = csv.reader(self._lines(), delimiter=self.delimiter, strict=True)
        while True:
            start = self._line + 1
            try:
                cells = next(parser)
            except StopIteration:
                return
            except csv.Error as exc:
                yield BadRow(start, _span(start, self._line, f"cannot be read as CSV ({exc})"))
                continue
            if not cells or (cells == [""] and width > 1):
                continue  # a blank line
            if len(cells) != width:
                what = f"has {len(cells)} cells where the header has {width}"
                if self._line > start:
                    what += " (an unclosed quote joins the lines that follow it)"
                yield BadRow(start, _span(start, self._line, what))
                continue
            if not any(cell.strip() for cell in cells):
                # A row of separators only (",,,,"): never an empty contact.
                yield BadRow(start, f"{EMPTY_ROW}: line {start} has no value in any cell")
                continue
            yield Row(start, dict(zip(header, cells, strict=True)))


def _span(start: int, end: int, what: str) -> str:
    where = f"lines {start}-{end}" if end > start else f"line {start}"
    return f"BAD_ROW: {where} {what}"


def _preview(header: list[str]) -> str:
    text = ", ".join(repr(name) for name in header[:5])
    return f"found {text}{', ...' if len(header) > 5 else ''}"
