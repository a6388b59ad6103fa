"""Unit tests for crm.security.otp: code generation and challenge-bound verification."""

from __future__ import annotations

import secrets as stdlib_secrets
from collections import Counter
from typing import Any

import pytest

from crm.security.otp import code_hmac, generate_code, verify_code

SECRET = "server-secret-for-otp-tests-0123456789abcdef"
CHALLENGE = "6f1c1f0e-3a43-4a1f-9d0e-0c2f4c1b9a11"


def test_generate_code_is_six_ascii_digits_by_default() -> None:
    for _ in range(500):
        code = generate_code()
        assert len(code) == 6
        assert set(code) <= set("0123456789")


def test_generate_code_zero_pads_small_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stdlib_secrets, "randbelow", lambda bound: 42)
    assert generate_code() == "000042"
    assert generate_code(8) == "00000042"


def test_generate_code_draws_uniformly_from_the_full_range(monkeypatch: pytest.MonkeyPatch) -> None:
    bounds: list[int] = []

    def fake_randbelow(bound: int) -> int:
        bounds.append(bound)
        return bound - 1

    monkeypatch.setattr(stdlib_secrets, "randbelow", fake_randbelow)
    assert generate_code() == "999999"
    assert bounds == [10**6]


def test_generated_codes_spread_over_all_leading_digits() -> None:
    leading = Counter(generate_code()[0] for _ in range(3000))
    assert set(leading) == set("0123456789")


@pytest.mark.parametrize("digits", [0, 4, 5, 11])
def test_generate_code_refuses_lengths_outside_6_to_10(digits: int) -> None:
    with pytest.raises(ValueError):
        generate_code(digits)


def test_correct_code_verifies_against_its_stored_hmac() -> None:
    stored = code_hmac(SECRET, CHALLENGE, "012345")
    assert verify_code(SECRET, CHALLENGE, "012345", stored)


def test_stored_value_is_not_the_code_nor_its_plain_hash() -> None:
    stored = code_hmac(SECRET, CHALLENGE, "123456")
    assert "123456" not in stored
    assert len(stored) == 64


def test_wrong_code_does_not_verify() -> None:
    stored = code_hmac(SECRET, CHALLENGE, "123456")
    assert not verify_code(SECRET, CHALLENGE, "123457", stored)
    assert not verify_code(SECRET, CHALLENGE, "654321", stored)


def test_stored_hmac_replayed_on_another_challenge_does_not_verify() -> None:
    stored = code_hmac(SECRET, CHALLENGE, "123456")
    assert not verify_code(SECRET, "another-challenge-id", "123456", stored)


def test_challenge_and_code_cannot_be_re_split_to_collide() -> None:
    # Without length framing, ("abc1", "23456...") and ("abc", "123456") could hash alike.
    assert code_hmac(SECRET, "abc1", "234567") != code_hmac(SECRET, "abc", "123456")


def test_code_does_not_verify_under_another_server_secret() -> None:
    stored = code_hmac(SECRET, CHALLENGE, "123456")
    assert not verify_code(SECRET + "x", CHALLENGE, "123456", stored)


@pytest.mark.parametrize(
    "attempt",
    [
        "12345",  # too short
        "1234567",  # too long
        "",
        "12345a",
        " 123456",
        "123456 ",
        "12 456",
        "-12345",
        "１２３４５６",  # fullwidth digits: isdigit() is True, but they are not a code
        "١٢٣٤٥٦",  # Arabic-Indic digits
        "¹²³⁴⁵⁶",  # superscripts
        "123456\x00",
    ],
)
def test_malformed_attempts_are_false_without_raising(attempt: str) -> None:
    stored = code_hmac(SECRET, CHALLENGE, "123456")
    assert verify_code(SECRET, CHALLENGE, attempt, stored) is False


@pytest.mark.parametrize("attempt", [None, 123456, b"123456", ["123456"]])
def test_non_string_attempts_are_false_without_raising(attempt: Any) -> None:
    stored = code_hmac(SECRET, CHALLENGE, "123456")
    assert verify_code(SECRET, CHALLENGE, attempt, stored) is False


def test_garbage_stored_hmac_is_false_without_raising() -> None:
    assert verify_code(SECRET, CHALLENGE, "123456", "") is False
    assert verify_code(SECRET, CHALLENGE, "123456", "ж" * 64) is False


def test_longer_codes_verify_when_the_length_is_declared() -> None:
    stored = code_hmac(SECRET, CHALLENGE, "12345678")
    assert verify_code(SECRET, CHALLENGE, "12345678", stored, digits=8)
    assert not verify_code(SECRET, CHALLENGE, "12345678", stored)


@pytest.mark.parametrize("code", ["12345", "abcdef", "１２３４５６"])
def test_code_hmac_refuses_to_store_a_malformed_code(code: str) -> None:
    with pytest.raises(ValueError):
        code_hmac(SECRET, CHALLENGE, code)
