"""Identifiers for an import batch, drawn in bulk: the same forms as `crm.ids`, fewer system calls.

`crm.ids.uuid7` and `short_code` read the system's random source once per id (and once per
character of a code); an import needs three or four ids per row, which made id generation about
5% of its CPU. Here a batch's random bytes are read at once and cut up. The ids have the same
shape and the same number of random bits: a UUIDv7 with the current millisecond and 74 random
bits, a code of 10 characters of the same alphabet, each 5 uniform random bits
(tests/unit/test_import_plain.py checks both against `crm.ids`).
"""

from __future__ import annotations

import os
import time

from crm.ids import _CODE_ALPHABET

_CODE_LENGTH = 10
# A byte's low 5 bits pick a character: the alphabet has 32, so each is equally likely.
_CODE_TABLE = bytes(ord(_CODE_ALPHABET[b & 31]) for b in range(256))
# The variant's first hex digit (binary 10xx): two random bits choose among 8, 9, a, b.
_VARIANT = "89ab" * 4


def uuid7_batch(count: int) -> list[str]:
    """`count` UUIDv7 strings of this millisecond, each with 74 random bits."""
    if count <= 0:
        return []
    ms = (time.time_ns() // 1_000_000) & ((1 << 48) - 1)
    stamp = f"{ms:012x}"
    head = f"{stamp[:8]}-{stamp[8:]}-7"
    # 10 random bytes (20 hex digits) per id; 74 of the 80 bits are used: 12 after the version
    # digit, 2 in the variant digit, 60 after it.
    raw = os.urandom(10 * count).hex()
    variant = _VARIANT
    out = []
    for at in range(0, 20 * count, 20):
        r = raw[at : at + 20]
        out.append(f"{head}{r[:3]}-{variant[int(r[3], 16)]}{r[4:7]}-{r[7:19]}")
    return out


def short_codes(count: int) -> list[str]:
    """`count` codes like `crm.ids.short_code()` gives (`K7XQ-2M9PDA`)."""
    if count <= 0:
        return []
    text = os.urandom(_CODE_LENGTH * count).translate(_CODE_TABLE).decode("ascii")
    return [
        f"{text[at : at + 4]}-{text[at + 4 : at + _CODE_LENGTH]}"
        for at in range(0, _CODE_LENGTH * count, _CODE_LENGTH)
    ]


class IdPool:
    """Generated contact ids and codes for a batch's rows, drawn a block at a time."""

    def __init__(self, block: int = 1000) -> None:
        self._block = block
        self._uuids: list[str] = []
        self._codes: list[str] = []

    def uuid7(self) -> str:
        if not self._uuids:
            self._uuids = uuid7_batch(self._block)
        return self._uuids.pop()

    def code(self) -> str:
        if not self._codes:
            self._codes = short_codes(self._block)
        return self._codes.pop()
