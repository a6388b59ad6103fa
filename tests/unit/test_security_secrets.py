"""Unit tests for crm.security.secrets: random tokens, digests, timing-safe comparison."""

from __future__ import annotations

import base64
import hashlib

import pytest

from crm.security.secrets import constant_time_equals, new_token, sha256_hex


def test_new_token_default_carries_256_random_bits_urlsafe() -> None:
    token = new_token()
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(raw) == 32
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_new_token_is_different_every_time() -> None:
    assert len({new_token() for _ in range(200)}) == 200


def test_new_token_refuses_fewer_than_128_bits() -> None:
    with pytest.raises(ValueError):
        new_token(15)
    raw = new_token(16)
    assert len(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))) == 16


def test_sha256_hex_matches_hashlib_on_utf8() -> None:
    assert sha256_hex("héllo") == hashlib.sha256("héllo".encode()).hexdigest()
    assert sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_constant_time_equals_tells_equal_from_different() -> None:
    assert constant_time_equals("abc", "abc")
    assert not constant_time_equals("abc", "abd")
    assert not constant_time_equals("abc", "abcd")
    assert constant_time_equals(b"\x00\x01", b"\x00\x01")


def test_constant_time_equals_handles_non_ascii_and_mixed_types_without_raising() -> None:
    assert constant_time_equals("ключ", "ключ")
    assert not constant_time_equals("ключ", "ключи")
    assert constant_time_equals("abc", b"abc")
    assert not constant_time_equals("１２３", "123")
