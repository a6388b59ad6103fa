"""What an import batch claims in the unique indexes, so that batches can be written side by side.

Two batch transactions in flight at once keep both the database and this process busy (one
encodes a batch's rows while the database indexes the other's). They must not race for the same
unique key: the outcome would depend on which commits first (the later line of the file could
win over the earlier one, where a one-at-a-time import keeps the earlier), and two batches each
waiting for the other's key would deadlock. So a batch goes beside those in flight only when
its keys are known and none of them is claimed by a batch in flight; otherwise it waits for them.
"""

from __future__ import annotations

from collections.abc import Iterable

from crm.imports.prepare import Batch

Claims = frozenset[tuple[str, str]]


def of(batch: Batch) -> Claims | None:
    """The batch's unique keys, or None when it must be written alone (it writes identities,
    whose unique keys are not listed here).

    A contact's other unique keys (document numbers, loyalty identifiers) are not columns an
    import takes (tests/integration/test_import_writers.py keeps it so).
    """
    if batch.hashes.by_line:
        return None
    keys: list[tuple[str, str]] = []
    for item in batch.prepared.rows:
        keys.append(("id", item.contact.id))
        keys.append(("code", item.contact.code))
    return frozenset(keys)


def may_join(claims: Claims | None, in_flight: Iterable[Claims | None]) -> bool:
    """Whether a batch with `claims` may be written beside the batches in flight."""
    if claims is None:
        return False
    return all(other is not None and claims.isdisjoint(other) for other in in_flight)
