"""The CSV reader's row rules that need no database."""

from __future__ import annotations

import io

from crm.contacts.import_reader import BadRow, Reader, Row


def test_a_row_of_separators_only_is_rejected_never_an_empty_contact() -> None:
    text = "id,first_name,last_name\nc1,Ann,Lee\n,,\n , ,\t\n\nc2,Bo,\n"
    rows = list(Reader(io.BytesIO(text.encode()), encoding="utf-8", delimiter=None))
    assert [type(r) for r in rows] == [Row, BadRow, BadRow, Row]
    assert [r.line for r in rows] == [2, 3, 4, 6]
    bad = [r for r in rows if isinstance(r, BadRow)]
    assert bad[0].reason == "EMPTY_ROW: line 3 has no value in any cell"
