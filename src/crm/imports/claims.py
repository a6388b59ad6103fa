"""What an import batch claims in the unique indexes, so that batches can be written side by side.

Two batch transactions in flight at once keep both the database and this process busy (one
encodes a batch's rows while the database indexes the other's). They must not race for the same
unique key: the outcome would depend on which commits first (the later line of the file could
win over the earlier one, where a one-at-a-time import keeps the earlier), and two batches each
waiting for a key the other holds would deadlock (PostgreSQL then ends one of them, and the
import with it). So a batch goes beside those in flight only when its keys are known and none of
them is claimed by a batch in flight; otherwise it waits for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from crm.contacts.importer import unescape_cell

Claims = frozenset[tuple[str, str]]

# The members of a row's `demographics` cell that set a contact's document numbers (passport,
# identity card, statutory number: unique per tenant, like ids and codes). They are not listed
# as claims (the stored number is a folded form of the cell's): a batch giving one goes alone.
DOCUMENT_MEMBERS = ("passport", "id_details", "statutory_number")


def _cell(cells: Mapping[str, str | None], name: str) -> str:
    """A cell as the import reads it (stripped, a formula escape taken off)."""
    value = cells.get(name)
    return unescape_cell(value.strip()).strip() if value else ""


def of_rows(rows: Sequence[tuple[int, Mapping[str, str | None]]]) -> Claims | None:
    """The ids and codes a batch's rows give, or None when the batch must be written alone (it
    writes identities, or document numbers, whose unique keys are not listed here).

    Generated ids are UUIDv7s and generated codes 50 random bits, so they are not listed: if two
    batches in flight draw the same code (a chance of about one in 10^9 per pair of batches),
    the later one fails on the unique index as it would against any other writer, and its rows
    are written one by one, each drawing a new code. Loyalty identifiers, a contact's other
    unique key, are not something an import takes (tests/integration/test_import_writers.py
    checks both lists against what a row can set).
    """
    keys: list[tuple[str, str]] = []
    for _line, cells in rows:
        if _cell(cells, "password_hash"):
            return None
        demographics = cells.get("demographics")
        if demographics and any(member in demographics for member in DOCUMENT_MEMBERS):
            return None
        for name in ("id", "code"):
            value = _cell(cells, name)
            if value:
                keys.append((name, value))
    return frozenset(keys)


def may_join(claims: Claims | None, in_flight: Iterable[Claims | None]) -> bool:
    """Whether a batch with `claims` may be written beside the batches in flight."""
    if claims is None:
        return False
    return all(other is not None and claims.isdisjoint(other) for other in in_flight)
