"""Unit tests for crm.security.crypto: SecretBox and the purpose-bound HMAC."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from crm.errors import AppError, DecryptionFailed
from crm.security.crypto import SecretBox, hmac_sha256

SECRET = "a-server-secret-of-reasonable-length-0123456789"


def _raw(token: str) -> bytes:
    body = token.removeprefix("v1.")
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _token(raw: bytes) -> str:
    return "v1." + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_encrypt_then_decrypt_round_trips_bytes_and_str() -> None:
    box = SecretBox(SECRET, "jwt-signing-key")
    assert box.decrypt(box.encrypt(b"\x00\xffprivate")) == b"\x00\xffprivate"
    assert box.decrypt(box.encrypt("pässword")) == "pässword".encode()
    assert box.decrypt(box.encrypt(b"")) == b""


def test_ciphertext_is_versioned_urlsafe_and_hides_the_plaintext() -> None:
    token = SecretBox(SECRET, "p").encrypt(b"hunter2-hunter2")
    assert token.startswith("v1.")
    assert "=" not in token and "+" not in token and "/" not in token
    assert b"hunter2" not in _raw(token)
    # 12-byte nonce + ciphertext + 16-byte tag
    assert len(_raw(token)) == 12 + len(b"hunter2-hunter2") + 16


def test_same_plaintext_encrypts_differently_each_time() -> None:
    box = SecretBox(SECRET, "p")
    first, second = box.encrypt(b"same"), box.encrypt(b"same")
    assert first != second
    assert _raw(first)[:12] != _raw(second)[:12]


@pytest.mark.parametrize("index", [0, 11, 12, -1])
def test_flipping_any_bit_of_nonce_ciphertext_or_tag_is_refused(index: int) -> None:
    box = SecretBox(SECRET, "p")
    raw = bytearray(_raw(box.encrypt(b"provider api key")))
    raw[index] ^= 0x01
    with pytest.raises(DecryptionFailed):
        box.decrypt(_token(bytes(raw)))


def test_decrypting_with_another_server_secret_is_refused() -> None:
    token = SecretBox(SECRET, "p").encrypt(b"x")
    with pytest.raises(DecryptionFailed):
        SecretBox(SECRET + "!", "p").decrypt(token)


def test_decrypting_with_another_purpose_is_refused() -> None:
    token = SecretBox(SECRET, "sms-credentials").encrypt(b"x")
    with pytest.raises(DecryptionFailed):
        SecretBox(SECRET, "jwt-signing-key").decrypt(token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "v1.",
        "v2.AAAA",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.!!!not-base64!!!",
        "v1.AAAA",
    ],
)
def test_malformed_or_truncated_values_are_refused_with_decryption_failed(token: str) -> None:
    with pytest.raises(DecryptionFailed):
        SecretBox(SECRET, "p").decrypt(token)


def test_decryption_failure_is_an_app_error_that_hides_its_cause_from_clients() -> None:
    with pytest.raises(AppError) as caught:
        SecretBox(SECRET, "p").decrypt("v1.AAAA")
    assert caught.value.code == "INTERNAL_ERROR"
    assert caught.value.status_code == 500


def test_empty_server_secret_or_purpose_is_refused() -> None:
    with pytest.raises(ValueError):
        SecretBox("", "p")
    with pytest.raises(ValueError):
        SecretBox(SECRET, "")


def test_hmac_sha256_is_deterministic_hex_and_depends_on_every_input() -> None:
    mac = hmac_sha256(SECRET, "otp", b"message")
    assert mac == hmac_sha256(SECRET, "otp", b"message")
    assert len(mac) == 64 and int(mac, 16) >= 0
    assert mac != hmac_sha256(SECRET, "otp", b"messagf")
    assert mac != hmac_sha256(SECRET, "api-key", b"message")
    assert mac != hmac_sha256(SECRET + "x", "otp", b"message")


def test_hmac_key_is_derived_not_the_raw_server_secret() -> None:
    raw = hmac.new(SECRET.encode(), b"message", hashlib.sha256).hexdigest()
    assert hmac_sha256(SECRET, "otp", b"message") != raw
