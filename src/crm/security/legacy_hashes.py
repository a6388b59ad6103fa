"""Password hashes brought from another system: checked at import, verified at sign-in.

Accepted at import (one `password_hash` cell per row):

- bcrypt, Modular Crypt: `$2a$`, `$2b$`, `$2y$` (cost 4 to 16); `$2y$` is stored as `$2b$`,
  the same algorithm under PHP's name.
- argon2, PHC: `$argon2id$` and `$argon2i$` (memory up to 256 MiB, up to 10 passes, 8 lanes).
- PBKDF2-SHA256 in passlib's form `$pbkdf2-sha256$ROUNDS$SALT$HASH` (adapted base64, `.` for `+`)
  or the PHC form `$pbkdf2-sha256$i=ROUNDS[,l=LEN]$SALT$HASH` (base64 without padding), and
  Django's `pbkdf2_sha256$ROUNDS$SALT$HASH` (a text salt, base64 hash); up to 5,000,000 rounds.
- Firebase's scrypt variant: `$firebase-scrypt$SALT$HASH`, the user's salt and hash in base64 as
  Firebase's export gives them; the project's signer key, salt separator, rounds and memory cost
  are given once per import (`FirebaseScrypt`) and stored with each hash, so a stored hash is
  verified alone.

Every refusal raises `HashFormatError` with a stable code and never the hash itself. Nothing here
re-hashes: the sign-in that verifies a hash replaces it with argon2id (`passwords.needs_rehash`).
The parameter bounds stop an imported hash from costing more than a few seconds (or gigabytes)
per sign-in attempt. Comparisons are constant-time (bcrypt and argon2 do their own).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

import bcrypt
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

UNKNOWN_FORMAT = "PASSWORD_HASH_UNKNOWN_FORMAT"
MALFORMED = "PASSWORD_HASH_MALFORMED"
PARAMETERS_OUT_OF_RANGE = "PASSWORD_HASH_PARAMETERS_OUT_OF_RANGE"
FIREBASE_PARAMETERS_MISSING = "PASSWORD_HASH_FIREBASE_PARAMETERS_MISSING"

MAX_HASH_CHARS = 1024
_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_BCRYPT_COST = (4, 16)
_PBKDF2_ROUNDS = (1_000, 5_000_000)
_PBKDF2_DIGESTS = {"sha256": 32}
_ARGON2_MAX_MEMORY_KIB = 256 * 1024
_ARGON2_MAX_TIME = 10
_ARGON2_MAX_LANES = 8
_FIREBASE_ROUNDS = (1, 16)
_FIREBASE_MEM_COST = (1, 16)
# bcrypt reads at most 72 bytes of a password; the systems that made these hashes dropped the rest.
_BCRYPT_MAX_BYTES = 72
_FIREBASE = "$firebase-scrypt$"
# The stored form of a Firebase hash carries the project's parameters (see the module docstring).
_FIREBASE_STORED = "$firebase-scrypt$v=1$"
_ARGON2_VERIFIER = PasswordHasher()


class HashFormatError(ValueError):
    """An imported hash that cannot be used; `code` is stable and the message names no secret."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class FirebaseScrypt:
    """A Firebase project's password hash parameters (Authentication > Users > Password hash)."""

    signer_key: bytes
    salt_separator: bytes
    rounds: int
    mem_cost: int

    @classmethod
    def from_base64(
        cls, *, signer_key: str, salt_separator: str, rounds: int, mem_cost: int
    ) -> FirebaseScrypt:
        """From the values Firebase's console shows; ValueError names what is wrong."""
        try:
            key = base64.b64decode(signer_key, validate=True)
            separator = base64.b64decode(salt_separator, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the Firebase signer key and salt separator are base64") from None
        if not key:
            raise ValueError("the Firebase signer key is empty")
        if not _FIREBASE_ROUNDS[0] <= rounds <= _FIREBASE_ROUNDS[1]:
            raise ValueError(
                f"Firebase rounds must be {_FIREBASE_ROUNDS[0]}..{_FIREBASE_ROUNDS[1]}"
            )
        if not _FIREBASE_MEM_COST[0] <= mem_cost <= _FIREBASE_MEM_COST[1]:
            raise ValueError(
                f"Firebase mem_cost must be {_FIREBASE_MEM_COST[0]}..{_FIREBASE_MEM_COST[1]}"
            )
        return cls(key, separator, rounds, mem_cost)


def _b64(text: str, *, adapted: bool = False) -> bytes:
    if adapted:
        text = text.replace(".", "+")
    text = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise HashFormatError(MALFORMED, "a part of the hash is not base64") from None


def _b64_out(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _rounds(text: str) -> int:
    if not text.isdigit() or len(text) > 9:
        raise HashFormatError(MALFORMED, "the rounds are not a number")
    rounds = int(text)
    if not _PBKDF2_ROUNDS[0] <= rounds <= _PBKDF2_ROUNDS[1]:
        raise HashFormatError(PARAMETERS_OUT_OF_RANGE, "PBKDF2 rounds out of range")
    return rounds


def _pbkdf2_stored(digest: str, rounds: int, salt: bytes, checksum: bytes) -> str:
    if len(checksum) < 16 or not salt:
        raise HashFormatError(MALFORMED, "the PBKDF2 salt or hash is too short")
    # One stored form for all three spellings: PHC with the salt's raw bytes.
    return f"$pbkdf2-{digest}$i={rounds},l={len(checksum)}${_b64_out(salt)}${_b64_out(checksum)}"


def _import_pbkdf2(value: str) -> str:
    if value.startswith("pbkdf2_"):  # Django: pbkdf2_sha256$rounds$salt$hash
        algorithm, rounds, salt, checksum = _split(value, 4)
        digest = algorithm.removeprefix("pbkdf2_")
        if digest not in _PBKDF2_DIGESTS:
            raise HashFormatError(UNKNOWN_FORMAT, "an unknown Django hasher")
        return _pbkdf2_stored(digest, _rounds(rounds), salt.encode("utf-8"), _b64(checksum))
    _, algorithm, params, salt, checksum = _split(value, 5)
    digest = algorithm.removeprefix("pbkdf2-")
    if digest not in _PBKDF2_DIGESTS:
        raise HashFormatError(UNKNOWN_FORMAT, "an unknown PBKDF2 digest")
    if params.startswith("i="):  # PHC: i=ROUNDS[,l=LENGTH], standard base64
        fields = dict(part.partition("=")[::2] for part in params.split(","))
        if set(fields) - {"i", "l"}:
            raise HashFormatError(MALFORMED, "unknown PBKDF2 parameters")
        raw = _b64(checksum)
        if "l" in fields and fields["l"] != str(len(raw)):
            raise HashFormatError(MALFORMED, "the PBKDF2 length does not match the hash")
        return _pbkdf2_stored(digest, _rounds(fields["i"]), _b64(salt), raw)
    # passlib: $pbkdf2-sha256$ROUNDS$SALT$HASH in adapted base64
    return _pbkdf2_stored(
        digest, _rounds(params), _b64(salt, adapted=True), _b64(checksum, adapted=True)
    )


def _split(value: str, parts: int) -> list[str]:
    pieces = value.split("$")
    if len(pieces) != parts or not all(pieces[1:]):
        raise HashFormatError(MALFORMED, "the hash does not have the parts of its format")
    return pieces


def _import_argon2(value: str) -> str:
    try:
        params = extract_parameters(value)
    except (InvalidHashError, ValueError):
        raise HashFormatError(MALFORMED, "not a readable argon2 hash") from None
    if params.type not in (Type.ID, Type.I):
        raise HashFormatError(UNKNOWN_FORMAT, "argon2d is not accepted")
    if (
        params.memory_cost > _ARGON2_MAX_MEMORY_KIB
        or params.time_cost > _ARGON2_MAX_TIME
        or params.parallelism > _ARGON2_MAX_LANES
    ):
        raise HashFormatError(PARAMETERS_OUT_OF_RANGE, "argon2 parameters out of range")
    return value


def _import_bcrypt(value: str) -> str:
    match = _BCRYPT.fullmatch(value)
    if match is None:
        raise HashFormatError(MALFORMED, "not a readable bcrypt hash")
    if not _BCRYPT_COST[0] <= int(match.group(1)) <= _BCRYPT_COST[1]:
        raise HashFormatError(PARAMETERS_OUT_OF_RANGE, "bcrypt cost out of range")
    return "$2b$" + value[4:] if value.startswith("$2y$") else value


def _import_firebase(value: str, firebase: FirebaseScrypt | None) -> str:
    _, _, salt, checksum = _split(value, 4)
    raw_salt, raw_hash = _b64(salt), _b64(checksum)
    if firebase is None:
        raise HashFormatError(
            FIREBASE_PARAMETERS_MISSING, "a Firebase scrypt hash needs the project's parameters"
        )
    if not raw_salt or len(raw_hash) != len(firebase.signer_key):
        raise HashFormatError(MALFORMED, "the Firebase hash does not fit the signer key")
    return (
        f"{_FIREBASE_STORED}r={firebase.rounds},m={firebase.mem_cost}"
        f"${_b64_out(firebase.salt_separator)}${_b64_out(firebase.signer_key)}"
        f"${_b64_out(raw_salt)}${_b64_out(raw_hash)}"
    )


def import_hash(value: str, *, firebase: FirebaseScrypt | None = None) -> str:
    """The form to store for an imported hash; HashFormatError when it cannot be used."""
    value = value.strip()
    if len(value) > MAX_HASH_CHARS:
        raise HashFormatError(MALFORMED, "the hash is too long")
    if value.startswith(("$2a$", "$2b$", "$2y$")):
        return _import_bcrypt(value)
    if value.startswith(("$argon2id$", "$argon2i$")):
        return _import_argon2(value)
    if value.startswith(("$pbkdf2-", "pbkdf2_")):
        return _import_pbkdf2(value)
    if value.startswith(_FIREBASE):
        return _import_firebase(value, firebase)
    raise HashFormatError(UNKNOWN_FORMAT, "not a password hash format crm can import")


def is_legacy(stored: str) -> bool:
    """Whether a stored hash is an imported one that argon2 cannot verify itself."""
    return stored.startswith(("$2a$", "$2b$", "$pbkdf2-", _FIREBASE_STORED))


def firebase_scrypt(password: bytes, salt: bytes, params: FirebaseScrypt) -> bytes:
    """Firebase's hash: scrypt(password, salt + separator) as the AES-256-CTR key for the signer key.

    The published algorithm (github.com/firebase/scrypt): N = 2^mem_cost, r = rounds, p = 1, a
    32-byte key, a zero counter block; the result is the encrypted signer key.
    """
    n = 1 << params.mem_cost
    key = hashlib.scrypt(
        password,
        salt=salt + params.salt_separator,
        n=n,
        r=params.rounds,
        p=1,
        dklen=32,
        maxmem=256 * n * params.rounds + (1 << 20),
    )
    encryptor = Cipher(algorithms.AES(key), modes.CTR(b"\x00" * 16)).encryptor()
    return encryptor.update(params.signer_key) + encryptor.finalize()


def _verify_firebase(stored: str, password: bytes) -> bool:
    try:
        _, _, _, costs, separator, signer, salt, checksum = stored.split("$")
        rounds, mem = (int(part.partition("=")[2]) for part in costs.split(","))
        params = FirebaseScrypt(_b64(signer), _b64(separator), rounds, mem)
        return hmac.compare_digest(firebase_scrypt(password, _b64(salt), params), _b64(checksum))
    except (ValueError, HashFormatError):
        return False


def _verify_pbkdf2(stored: str, password: bytes) -> bool:
    try:
        _, algorithm, params, salt, checksum = stored.split("$")
        rounds = int(params.split(",")[0].removeprefix("i="))
        expected = _b64(checksum)
        computed = hashlib.pbkdf2_hmac(
            algorithm.removeprefix("pbkdf2-"), password, _b64(salt), rounds, len(expected)
        )
        return hmac.compare_digest(computed, expected)
    except (ValueError, HashFormatError):
        return False


def verify(stored: str, password: str) -> bool:
    """Whether `password` (as typed, not normalised: the old system hashed it so) matches."""
    raw = password.encode("utf-8")
    if stored.startswith(("$2a$", "$2b$")):
        try:
            return bcrypt.checkpw(raw[:_BCRYPT_MAX_BYTES], stored.encode("ascii"))
        except ValueError:
            return False
    if stored.startswith("$pbkdf2-"):
        return _verify_pbkdf2(stored, raw)
    if stored.startswith(_FIREBASE_STORED):
        return _verify_firebase(stored, raw)
    if stored.startswith("$argon2"):
        try:
            return _ARGON2_VERIFIER.verify(stored, raw)
        except (VerificationError, InvalidHashError):
            return False
    return False
