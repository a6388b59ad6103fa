"""CSV cells a spreadsheet would run as formulas are escaped on export and read back on import."""

from __future__ import annotations

import pytest

from crm.contacts.importer import escape_cell, unescape_cell

VALUES = [
    "=1+1",
    "+357",
    "-5",
    "@cmd",
    "\tx",
    "\rx",
    "'=x",
    "''=x",
    "'",
    "''",
    "'plain",
    "O'Brien",
    "plain",
    "",
    "a=b",
]


@pytest.mark.parametrize("value", VALUES)
def test_escape_then_unescape_gives_the_value_back(value: str) -> None:
    assert unescape_cell(escape_cell(value)) == value


@pytest.mark.parametrize("value", ["=1+1", "+357", "-5", "@cmd", "\tx", "\rx", "'=x"])
def test_formulas_are_prefixed(value: str) -> None:
    assert escape_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["plain", "O'Brien", "'plain", "", "a=b", "'"])
def test_other_values_are_left_alone(value: str) -> None:
    assert escape_cell(value) == value
