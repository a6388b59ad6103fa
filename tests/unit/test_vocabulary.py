"""The shared words and plain-value rules: enums, the boolean parser, free text, retry_after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm.errors import retry_after
from crm.text import clean_text, parse_bool
from crm.vocabulary import ChallengePurpose, Channel, Provider, RevokeReason


def test_enum_members_are_their_stored_strings() -> None:
    assert Channel.SMS == "SMS" and Provider.PHONE == "PHONE"
    assert ChallengePurpose.PASSWORD_RESET == "PASSWORD_RESET"
    assert all(len(reason) <= 40 for reason in RevokeReason)  # the column's width


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), (False, False), ("true", True), (" FALSE ", False)]
)
def test_parse_bool_reads_true_and_false(value: Any, expected: bool) -> None:
    assert parse_bool(value) is expected


@pytest.mark.parametrize("value", ["yes", "1", "", 1, 0, None, "truee"])
def test_parse_bool_refuses_anything_else(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_bool(value)


def test_clean_text() -> None:
    assert clean_text("  Zoe\u0308 ") == "Zo\u00eb"
    assert clean_text("   ") is None
    for hidden in ("a\u200bb", "a\u202eb", "a\x00b", "a\u2028b"):
        with pytest.raises(ValueError):
            clean_text(hidden)


def test_retry_after_rounds_up_and_is_at_least_one() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after(now + timedelta(seconds=29, milliseconds=1), now) == 30
    assert retry_after(now + timedelta(seconds=30), now) == 30
    assert retry_after(now, now) == 1
    assert retry_after(now - timedelta(seconds=5), now) == 1
