"""Imported password hashes: each format against a vector made with its real library."""

from __future__ import annotations

import base64
import hashlib

import bcrypt
import pytest
from argon2 import PasswordHasher, Type

from crm.security import legacy_hashes, passwords
from crm.security.legacy_hashes import FirebaseScrypt, HashFormatError

PASSWORD = "correct horse 42"

# Firebase's published example (github.com/firebase/scrypt README): project parameters, the
# user's salt and the hash Firebase's own utility gives for "user1password".
FIREBASE = FirebaseScrypt.from_base64(
    signer_key="jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA==",
    salt_separator="Bw==",
    rounds=8,
    mem_cost=14,
)
FIREBASE_ROW = (
    "$firebase-scrypt$42xEC+ixf3L2lw==$"
    "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ=="
)


def _pbkdf2(rounds: int = 1000) -> tuple[bytes, bytes]:
    salt = b"salty-salt-1234"
    return salt, hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt, rounds)


def _ab64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=").replace("+", ".")


def vectors() -> dict[str, str]:
    salt, digest = _pbkdf2()
    return {
        "bcrypt 2b": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode(),
        "bcrypt 2a": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4, prefix=b"2a")).decode(),
        "bcrypt 2y": "$2y$" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()[4:],
        "argon2id": PasswordHasher(time_cost=1, memory_cost=1024, type=Type.ID).hash(PASSWORD),
        "argon2i": PasswordHasher(time_cost=1, memory_cost=1024, type=Type.I).hash(PASSWORD),
        "pbkdf2 passlib": f"$pbkdf2-sha256$1000${_ab64(salt)}${_ab64(digest)}",
        "pbkdf2 phc": (
            f"$pbkdf2-sha256$i=1000,l=32${base64.b64encode(salt).decode().rstrip('=')}"
            f"${base64.b64encode(digest).decode().rstrip('=')}"
        ),
        "pbkdf2 django": (
            "pbkdf2_sha256$1000$plainsalt$"
            + base64.b64encode(
                hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), b"plainsalt", 1000)
            ).decode()
        ),
    }


@pytest.mark.parametrize("name", list(vectors()))
async def test_each_format_verifies_its_password_and_nothing_else(name: str) -> None:
    stored = legacy_hashes.import_hash(vectors()[name])
    assert await passwords.verify_password(stored, PASSWORD)
    assert not await passwords.verify_password(stored, PASSWORD + "x")
    assert not await passwords.verify_password(stored, "")
    assert passwords.needs_rehash(stored)


async def test_firebase_scrypt_matches_firebases_published_vector() -> None:
    stored = legacy_hashes.import_hash(FIREBASE_ROW, firebase=FIREBASE)
    assert await passwords.verify_password(stored, "user1password")
    assert not await passwords.verify_password(stored, "user1passwore")
    assert passwords.needs_rehash(stored)
    # The stored form carries the project's parameters: it verifies alone.
    assert stored.startswith("$firebase-scrypt$v=1$r=8,m=14$")


def test_a_firebase_hash_without_the_projects_parameters_is_refused() -> None:
    with pytest.raises(HashFormatError) as caught:
        legacy_hashes.import_hash(FIREBASE_ROW)
    assert caught.value.code == "PASSWORD_HASH_FIREBASE_PARAMETERS_MISSING"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("5f4dcc3b5aa765d61d8327deb882cf99", "PASSWORD_HASH_UNKNOWN_FORMAT"),  # bare MD5
        ("$1$saltsalt$2vnaRpHa6Jxjz5n83ok8Z0", "PASSWORD_HASH_UNKNOWN_FORMAT"),  # md5-crypt
        ("$6$rounds=5000$salt$hash", "PASSWORD_HASH_UNKNOWN_FORMAT"),  # sha512-crypt
        (
            "$argon2d$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "PASSWORD_HASH_UNKNOWN_FORMAT",
        ),
        ("$2b$04$tooshort", "PASSWORD_HASH_MALFORMED"),
        ("$2b$31$" + "a" * 53, "PASSWORD_HASH_PARAMETERS_OUT_OF_RANGE"),
        ("$pbkdf2-sha256$99999999$c2FsdA$aGFzaA", "PASSWORD_HASH_PARAMETERS_OUT_OF_RANGE"),
        ("$pbkdf2-md5$1000$c2FsdA$aGFzaA", "PASSWORD_HASH_UNKNOWN_FORMAT"),
        ("$pbkdf2-sha256$1000$c2FsdA", "PASSWORD_HASH_MALFORMED"),
        ("pbkdf2_sha256$abc$salt$aGFzaA==", "PASSWORD_HASH_MALFORMED"),
        (
            "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "PASSWORD_HASH_PARAMETERS_OUT_OF_RANGE",
        ),
        ("$" * 2000, "PASSWORD_HASH_MALFORMED"),
    ],
)
def test_unusable_hashes_get_a_stable_code_and_never_echo_the_hash(value: str, code: str) -> None:
    with pytest.raises(HashFormatError) as caught:
        legacy_hashes.import_hash(value)
    assert caught.value.code == code
    assert value not in str(caught.value)


def test_firebase_parameters_are_bounded() -> None:
    with pytest.raises(ValueError, match="mem_cost"):
        FirebaseScrypt.from_base64(signer_key="AAAA", salt_separator="Bw==", rounds=8, mem_cost=30)
    with pytest.raises(ValueError, match="base64"):
        FirebaseScrypt.from_base64(signer_key="!!", salt_separator="Bw==", rounds=8, mem_cost=14)


async def test_bcrypt_reads_72_bytes_as_the_old_system_did() -> None:
    long = "x" * 80
    stored = legacy_hashes.import_hash(
        bcrypt.hashpw(long[:72].encode(), bcrypt.gensalt(4)).decode()
    )
    assert await passwords.verify_password(stored, long)
