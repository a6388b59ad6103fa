"""Encrypting small secrets at rest, and keyed HMACs, with keys derived from the server secret."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crm.errors import DecryptionFailed

_VERSION = "v1"
_PREFIX = _VERSION + "."
_NONCE_BYTES = 12  # 96 bits: the size GCM is specified for (NIST SP 800-38D)
_TAG_BYTES = 16
# A fixed, public salt only separates this application's keys from any other use of the same
# secret (RFC 5869 section 3.1); the purpose label in `info` separates keys inside the app.
_HKDF_SALT = b"crm.security.crypto/v1"


# The same few (secret, purpose) pairs are derived on every request; HKDF is cheap but not free,
# and the derived keys are no more secret than the server secret already held in memory.
@functools.lru_cache(maxsize=256)
def _derive_key(server_secret: str, label: bytes) -> bytes:
    if not server_secret:
        raise ValueError("the server secret must not be empty")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=label)
    return hkdf.derive(server_secret.encode("utf-8"))


def _purpose_bytes(purpose: str) -> bytes:
    if not purpose:
        raise ValueError("a purpose label is required")
    return purpose.encode("utf-8")


class SecretBox:
    """Encrypts and decrypts secrets for one purpose (e.g. "jwt-signing-key", "sms-credentials").

    Each purpose gets its own AES-256-GCM key via HKDF, so a ciphertext made for one purpose
    cannot be opened as another, and a leak of one derived key exposes nothing else.
    """

    def __init__(self, server_secret: str, purpose: str) -> None:
        self._aad = f"crm/secretbox/{_VERSION}/".encode() + _purpose_bytes(purpose)
        self._aead = AESGCM(_derive_key(server_secret, b"secretbox:" + _purpose_bytes(purpose)))

    def encrypt(self, plaintext: bytes | str) -> str:
        """Return "v1." + base64url(nonce || ciphertext || tag), without padding."""
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        # A random 96-bit nonce per message: safe for far more than the few thousand secrets a
        # tenant will ever store (the birthday bound for collisions is around 2**48 messages).
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, data, self._aad)
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")

    def decrypt(self, token: str) -> bytes:
        """Open a value made by `encrypt`; raise DecryptionFailed if altered or for another key."""
        if not isinstance(token, str) or not token.startswith(_PREFIX):
            raise DecryptionFailed("encrypted value has an unknown format or version")
        body = token[len(_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as exc:
            raise DecryptionFailed("encrypted value is not valid base64url") from exc
        if len(raw) < _NONCE_BYTES + _TAG_BYTES:
            raise DecryptionFailed("encrypted value is truncated")
        try:
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self._aad)
        except InvalidTag as exc:
            raise DecryptionFailed(
                "encrypted value failed authentication (tampered, or another server secret)"
            ) from exc


def hmac_sha256(server_secret: str, purpose: str, message: bytes) -> str:
    """Return the hex HMAC-SHA256 of `message` under a key derived for `purpose`.

    The HMAC key comes from a different HKDF label than any SecretBox key, so an HMAC output can
    never help against an encrypted value, even for the same purpose name.
    """
    key = _derive_key(server_secret, b"hmac:" + _purpose_bytes(purpose))
    return hmac.new(key, message, hashlib.sha256).hexdigest()


# A known plaintext sealed with the server secret and kept in the database: a process started
# with another secret fails to open it and refuses to start, instead of failing customer requests.
SECRET_CHECK_PURPOSE = "secret-check"
_SECRET_CHECK_PLAINTEXT = b"crm: this database is read with this server secret"


def make_secret_check(server_secret: str) -> str:
    """A check value that only `server_secret` opens (random nonce: it says nothing else)."""
    return SecretBox(server_secret, SECRET_CHECK_PURPOSE).encrypt(_SECRET_CHECK_PLAINTEXT)


def secret_check_opens(server_secret: str, value: str) -> bool:
    """Whether `value`, made by `make_secret_check`, was made with `server_secret`."""
    try:
        opened = SecretBox(server_secret, SECRET_CHECK_PURPOSE).decrypt(value)
    except DecryptionFailed:
        return False
    return hmac.compare_digest(opened, _SECRET_CHECK_PLAINTEXT)
