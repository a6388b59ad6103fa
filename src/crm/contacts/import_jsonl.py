"""Strict, streaming reading of a JSON-lines import file: one JSON object per line.

Each line is an object whose keys are the CSV import's column names (`first_name`,
`email_address`, `phone`, `password_hash`, ...). Scalar fields are JSON strings (the consent
flags may also be `true`/`false`), `phones`, `addresses`, `custom_fields` and `tags` are JSON
arrays and `demographics` an object; `null` is an absent field. A line becomes the same cells a
CSV row gives, so both formats meet one validation and one writer. A line that cannot be such
an object is yielded as a `BadRow` with a stable code and the rest of the file goes on; a blank
line is skipped. The file's encoding is checked as a whole first, as for CSV (a file in another
encoding would otherwise import its ASCII lines and reject the rest). Nothing here touches the
database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from crm.contacts.import_reader import BadRow, ImportFileError, Row
from crm.contacts.importer import (
    CONVENIENCE_COLUMNS,
    CREDENTIAL_COLUMNS,
    JSON_COLUMNS,
    SCALAR_COLUMNS,
    escape_cell,
)

# Stable reason codes of a line that cannot be read (the first word of a rejection's reason).
BAD_JSON = "BAD_JSON"
NOT_AN_OBJECT = "NOT_AN_OBJECT"
DUPLICATE_KEY = "DUPLICATE_KEY"
UNKNOWN_KEY = "UNKNOWN_KEY"
WRONG_TYPE = "WRONG_TYPE"
NOT_IMPORTABLE = "NOT_IMPORTABLE"
EMPTY_OBJECT = "EMPTY_OBJECT"

STRING_KEYS = frozenset((*SCALAR_COLUMNS, *CONVENIENCE_COLUMNS, *CREDENTIAL_COLUMNS))
BOOLEAN_KEYS = frozenset(("service_acceptance", "email_opt_out", "sms_opt_out"))
OBJECT_KEYS = frozenset(("demographics",))
ARRAY_KEYS = frozenset(name for name in JSON_COLUMNS if name not in OBJECT_KEYS)
# What `crm contacts export --format jsonl` writes beside the importable fields, so an export
# reads back: values the server sets are ignored; fields the import cannot write are accepted
# only empty (a non-empty one is rejected rather than silently dropped).
IGNORED_KEYS = frozenset(("created_date", "updated_date", "avatar_url"))
EXPORT_ONLY_KEYS = frozenset(("company_profile", "loyalty_identifiers"))
KNOWN_KEYS = STRING_KEYS | BOOLEAN_KEYS | OBJECT_KEYS | ARRAY_KEYS
_SHOWN_KEYS = 5


class _Duplicate(ValueError):
    pass


class _WrongType(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys silently; a file saying two things is refused.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def parse_line(line: int, text: str) -> Row | BadRow | None:
    """One line as the cells of a CSV row, a BadRow saying why not, or None when blank."""
    if not text.strip():
        return None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _Duplicate as exc:
        return BadRow(line, f"{DUPLICATE_KEY}: line {line} repeats the key {exc.args[0]!r}")
    except json.JSONDecodeError as exc:
        return BadRow(line, f"{BAD_JSON}: line {line} is not valid JSON ({exc.msg})")
    except ValueError as exc:  # NaN or Infinity, which Python's json would otherwise take
        return BadRow(line, f"{BAD_JSON}: line {line} is not valid JSON ({exc})")
    except RecursionError:
        # Nesting deeper than the interpreter's stack: never a valid row.
        return BadRow(line, f"{BAD_JSON}: line {line} is not valid JSON (nested too deeply)")
    if not isinstance(value, dict):
        return BadRow(
            line, f"{NOT_AN_OBJECT}: line {line} is {_json_type(value)}, not a JSON object"
        )
    unknown = sorted(k for k in value if k not in KNOWN_KEYS | IGNORED_KEYS | EXPORT_ONLY_KEYS)
    if unknown:
        shown = ", ".join(repr(k[:64]) for k in unknown[:_SHOWN_KEYS])
        more = ", ..." if len(unknown) > _SHOWN_KEYS else ""
        return BadRow(line, f"{UNKNOWN_KEY}: line {line} has unknown keys {shown}{more}")
    cells: dict[str, str | None] = {}
    for key, item in value.items():
        if key in IGNORED_KEYS:
            continue
        if key in EXPORT_ONLY_KEYS:
            if not _empty(item):
                return BadRow(line, f"{NOT_IMPORTABLE}: line {line}: {key} cannot be imported")
            continue
        try:
            cells[key] = _cell(key, item)
        except _WrongType as exc:
            return BadRow(line, f"{WRONG_TYPE}: line {line}: {key} {exc}")
    if all(cell is None or not cell.strip() for cell in cells.values()):
        return BadRow(line, f"{EMPTY_OBJECT}: line {line} has no field with a value")
    return Row(line, cells)


def _cell(key: str, item: Any) -> str | None:
    """The CSV cell for one value; _WrongType says what is wrong when the type is not right."""
    if item is None:
        return None
    if key in BOOLEAN_KEYS and isinstance(item, bool):
        return "true" if item else "false"
    if key in STRING_KEYS or key in BOOLEAN_KEYS:
        if not isinstance(item, str):
            want = "true, false or a string" if key in BOOLEAN_KEYS else "a string"
            raise _WrongType(f"must be {want}, not {_json_type(item)}")
        # The cell is read back with the CSV unescape: escaping first keeps the text as given.
        return escape_cell(item)
    want_array = key in ARRAY_KEYS
    if not isinstance(item, list if want_array else dict):
        want = "an array" if want_array else "an object"
        raise _WrongType(f"must be {want}, not {_json_type(item)}")
    return json.dumps(item, ensure_ascii=False)


class Reader:
    """The rows of a JSON-lines file in order, with their line numbers and the bytes read so far.

    The file must have been checked with `import_reader.check_encoding` first.
    """

    def __init__(self, handle: BinaryIO, *, encoding: str) -> None:
        self._handle = handle
        self._encoding = encoding
        self.bytes_read = 0
        # Unknown keys reject their line (a typo must not drop a field), so none is ignored.
        self.unknown: list[str] = []

    def __iter__(self) -> Iterator[Row | BadRow]:
        line = 0
        while raw := self._handle.readline():
            self.bytes_read += len(raw)
            line += 1
            text = raw.decode(self._encoding)
            if line == 1:
                text = text.lstrip("\ufeff")
            parsed = parse_line(line, text)
            if parsed is not None:
                yield parsed


def check_start(handle: BinaryIO, *, encoding: str) -> None:
    """Refuse a file whose first non-blank line is not an object with an import key.

    Like the CSV header check: a file that is not JSON lines of contacts at all (a CSV, a JSON
    array, another export) fails as a whole before anything is stored; a bad row further on is
    rejected by line with the rest of the file imported.
    """
    line = 0
    while raw := handle.readline():
        line += 1
        text = raw.decode(encoding).lstrip("\ufeff") if line == 1 else raw.decode(encoding)
        if not text.strip():
            continue
        parsed = parse_line(line, text)
        if isinstance(parsed, BadRow) and parsed.reason.startswith((BAD_JSON, NOT_AN_OBJECT)):
            raise ImportFileError(parsed.reason.partition(": ")[2] + _EXPECTED)
        if isinstance(parsed, BadRow) and parsed.reason.startswith(UNKNOWN_KEY):
            named = set(json.loads(text)) & (KNOWN_KEYS | IGNORED_KEYS | EXPORT_ONLY_KEYS)
            if not named:
                raise ImportFileError(f"line {line} names no field the import knows" + _EXPECTED)
        handle.seek(0)
        return
    raise ImportFileError("line 1: the file has no rows (it is empty)")


_EXPECTED = (
    "; each line must be one JSON object whose keys are the import's column names, for "
    'example {"first_name": "Ann", "email_address": "ann@example.com"}'
)
