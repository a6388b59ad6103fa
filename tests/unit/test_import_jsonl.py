"""The JSON-lines reader: each line becomes the CSV cells of a row, or a rejection by line."""

from __future__ import annotations

import io
import json

import pytest

from crm.contacts import import_jsonl
from crm.contacts.import_reader import BadRow, ImportFileError, Row
from crm.contacts.importer import row_to_body
from crm.imports import formats


def test_a_line_gives_the_body_the_api_would_receive() -> None:
    row = import_jsonl.parse_line(
        3,
        json.dumps(
            {
                "first_name": " Ann ",
                "last_name": "'=SUM(A1)",
                "tags": ["vip"],
                "demographics": {"gender": "FEMALE"},
                "custom_fields": [{"key": "tier", "value": "gold"}],
                "email_opt_out": False,
                "phone": "99123456",
                "middle_name": None,
                "updated_date": 1700000000,
            }
        ),
    )
    assert isinstance(row, Row) and row.line == 3
    body = row_to_body(row.cells)
    # A leading apostrophe is the value's own, not a CSV formula escape to take off.
    assert body["last_name"] == "'=SUM(A1)" and body["first_name"] == "Ann"
    assert body["tags"] == ["vip"] and body["email_opt_out"] == "false"
    assert body["phones"][0]["number"] == "99123456" and "updated_date" not in body
    assert body["demographics"] == {"gender": "FEMALE"}
    assert body["custom_fields"] == [{"key": "tier", "value": "gold"}]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{bad", "BAD_JSON"),
        ('{"first_name": NaN}', "BAD_JSON"),
        ("[" * 200_000, "BAD_JSON"),
        ('"a string"', "NOT_AN_OBJECT"),
        ("null", "NOT_AN_OBJECT"),
        ('{"first_name": "A", "first_name": "B"}', "DUPLICATE_KEY"),
        ('{"first_name": "A", "firstname": "B"}', "UNKNOWN_KEY"),
        ('{"first_name": ["A"]}', "WRONG_TYPE"),
        ('{"email_opt_out": "yes", "sms_opt_out": 1}', "WRONG_TYPE"),
        ('{"phones": {"number": "1"}}', "WRONG_TYPE"),
        ('{"demographics": []}', "WRONG_TYPE"),
        ("{}", "EMPTY_OBJECT"),
        ('{"first_name": " ", "tags": null}', "EMPTY_OBJECT"),
        ('{"first_name": "A", "company_profile": {"registration_number": "1"}}', "NOT_IMPORTABLE"),
    ],
)
def test_a_bad_line_is_rejected_with_its_line_and_a_stable_code(text: str, code: str) -> None:
    row = import_jsonl.parse_line(7, text)
    assert isinstance(row, BadRow), row
    assert row.line == 7 and row.reason.startswith(f"{code}: line 7")


def test_the_reader_skips_blank_lines_and_numbers_every_line() -> None:
    content = b'\xef\xbb\xbf{"first_name": "A"}\n\n   \r\n{"x": 1}\n{"first_name": "B"}'
    reader = formats.open_reader(formats.ImportFormat.JSONL, io.BytesIO(content), encoding="utf-8")
    rows = list(reader)
    assert [(r.line, type(r).__name__) for r in rows] == [(1, "Row"), (4, "BadRow"), (5, "Row")]
    assert reader.bytes_read == len(content)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no rows"),
        (b"\n\n", "no rows"),
        (b"first_name\nAnn\n", "line 1 is not valid JSON"),
        (b'\n[{"first_name": "A"}]\n', "line 2 is an array"),
        (b'{"name": "A", "mail": "a@example.com"}\n', "line 1 names no field"),
        (b'{"first_name": "A"}\n{"first_name": "\xff"}\n', "line 2: byte 0xFF"),
    ],
)
def test_a_file_that_is_not_json_lines_of_contacts_is_refused_whole(
    content: bytes, message: str
) -> None:
    with pytest.raises(ImportFileError, match=message):
        formats.check_file(content, formats.ImportFormat.JSONL, encoding="utf-8")


def test_a_first_line_with_one_bad_key_is_a_row_error_not_a_file_error() -> None:
    content = b'{"first_name": "A", "nickname": "B"}\n{"first_name": "C"}\n'
    formats.check_file(content, formats.ImportFormat.JSONL, encoding="utf-8")


def test_a_delimiter_is_refused_for_json_lines() -> None:
    with pytest.raises(ImportFileError, match="--delimiter"):
        formats.open_reader(
            formats.ImportFormat.JSONL, io.BytesIO(b"{}"), encoding="utf-8", delimiter=";"
        )
