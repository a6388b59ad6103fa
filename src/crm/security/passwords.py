"""Password hashing (argon2id, off the event loop) and the password policy of NIST SP 800-63B."""

from __future__ import annotations

import asyncio
import functools
import itertools
import secrets
import unicodedata
from collections.abc import Iterable
from importlib import resources

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from crm.errors import (
    PasswordRepetitive,
    PasswordSequential,
    PasswordTooLong,
    PasswordTooShort,
    PasswordWhitespaceOnly,
    WeakPassword,
)
from crm.security import legacy_hashes

MIN_LENGTH = 8
MAX_LENGTH = 128
# Input longer than this is refused before any hashing or normalisation work, so a
# multi-megabyte "password" cannot pin a worker thread. It sits far above MAX_LENGTH because NFKC
# may expand text, and a stored password was at most MAX_LENGTH code points after NFKC.
MAX_INPUT_CHARS = 4096

# OWASP Password Storage Cheat Sheet, second argon2id option: m=46 MiB, t=1, p=1 (all its options
# are rated equally strong). We prefer more memory and one pass over m=19 MiB/t=2 because memory
# is what makes GPU and ASIC guessing expensive. About 55 ms per hash on a 2-core server;
# p=1 because the server hashes many passwords at once, not one faster. Raising these later is
# safe: needs_rehash() tells the caller to re-hash on the next successful sign-in.
_HASHER = PasswordHasher(
    time_cost=1,
    memory_cost=46 * 1024,  # KiB
    parallelism=1,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)

_COMMON_PASSWORDS_RESOURCE = "data/common-passwords.txt"
# A repeated unit this short is a repetition whatever it is ("aaaaaaaa", "abababab", "abcabcab");
# a longer unit counts when it is itself common or sequential ("passwordpassword").
_SHORT_REPEATED_UNIT = 4
# Runs of keys people slide along: keyboard rows (QWERTY, QWERTZ, AZERTY) and the digit row;
# the alphabet and other code-point runs are found arithmetically.
_KEYBOARD_ROWS = (
    "`1234567890-=",
    "qwertyuiop[]\\",
    "asdfghjkl;'",
    "zxcvbnm,./",
    "qwertzuiop",
    "yxcvbnm",
    "azertyuiop",
    "qsdfghjklm",
    "wxcvbn",
)
_KEYBOARD_RUNS = (*_KEYBOARD_ROWS, *(row[::-1] for row in _KEYBOARD_ROWS))
# A run shorter than this is too common inside good passwords to count.
_MIN_RUN = 3
_LONGEST_ROW = max(len(row) for row in _KEYBOARD_ROWS)


def _normalize(password: str) -> str:
    # SP 800-63B 5.1.1.2: apply NFKC before hashing, so the same password typed on different
    # keyboards or input methods (composed vs decomposed accents, fullwidth forms) still matches.
    return unicodedata.normalize("NFKC", password)


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lowercased; loaded once, on first use."""
    text = resources.files("crm").joinpath(_COMMON_PASSWORDS_RESOURCE).read_text("utf-8")
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


def check_password_policy(password: str, *, context: Iterable[str] = ()) -> None:
    """Raise a WeakPassword error unless `password` meets the policy; return None if it does.

    SP 800-63B 5.1.1.2: length is counted in Unicode code points after NFKC, 8 to 128; every
    printable character and space is allowed and there are NO composition rules (they push users
    to predictable patterns); instead the password is checked against a list of commonly used
    passwords and, optionally, against `context` words such as the user's email or name, and
    refused when it is blank (only spaces, of any kind), repetitive or sequential, the other
    examples SP 800-63B gives of values to refuse. Each refusal has its own code.
    """
    if not isinstance(password, str):
        raise PasswordTooShort()
    if len(password) > MAX_INPUT_CHARS:
        raise PasswordTooLong()
    normalized = _normalize(password)
    if len(normalized) < MIN_LENGTH:
        raise PasswordTooShort()
    if len(normalized) > MAX_LENGTH:
        raise PasswordTooLong()
    if all(_is_blank(ch) for ch in normalized):
        raise PasswordWhitespaceOnly()
    lowered = normalized.lower()
    if lowered in common_passwords():
        raise WeakPassword("This password is one of the most commonly used; choose another.")
    if _is_repetitive(lowered):
        raise PasswordRepetitive()
    if _is_sequential(lowered):
        raise PasswordSequential()
    for word in context:
        if word and _normalize(word).lower() == lowered:
            raise WeakPassword("The password must not be the same as your name or username.")


def _is_blank(ch: str) -> bool:
    # Spaces of every script (U+3000 ideographic space is one after NFKC anyway) and the
    # invisible format and control characters: a password of them shows as nothing.
    return ch.isspace() or unicodedata.category(ch) in ("Cf", "Cc")


def _is_repetitive(password: str) -> bool:
    """Whether `password` is one unit said over and over ("aaaaaaaa", "abababab", "xyzxyzxy")."""
    size = len(password)
    for unit_size in range(1, size // 2 + 1):
        unit = password[:unit_size]
        repeated = unit * (size // unit_size + 1)
        if repeated[:size] != password:
            continue
        if unit_size <= _SHORT_REPEATED_UNIT or unit in common_passwords() or _is_sequential(unit):
            return True
    return False


def _is_run(text: str) -> bool:
    if len(text) < _MIN_RUN:
        return False
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(text)}
    if steps in ({1}, {-1}):
        return True
    return any(text in row for row in _KEYBOARD_RUNS)


def _is_sequential(password: str) -> bool:
    """Whether `password` is made wholly of runs: "12345678", "abcdefgh", "qwertyui", "1234abcd".

    Dynamic programming over prefixes: a prefix is covered when it ends with a run of at least
    three characters that follows a covered prefix. Runs are bounded by the longest keyboard
    row or alphabet, so the work is linear in the password's length.
    """
    size = len(password)
    covered = [True] + [False] * size
    longest = max(_LONGEST_ROW, 26)
    for end in range(_MIN_RUN, size + 1):
        for start in range(max(0, end - longest), end - _MIN_RUN + 1):
            if covered[start] and _is_run(password[start:end]):
                covered[end] = True
                break
    return covered[size]


def _hash_sync(password: str) -> str:
    return _HASHER.hash(_normalize(password))


def _verify_sync(password_hash: str, password: str) -> bool:
    if legacy_hashes.is_legacy(password_hash):
        # An imported hash (bcrypt, PBKDF2, Firebase scrypt): the sign-in that verifies it
        # replaces it with argon2id, since needs_rehash() is true for it.
        return legacy_hashes.verify(password_hash, password)
    try:
        return _HASHER.verify(password_hash, _normalize(password))
    except (VerificationError, InvalidHashError):
        # VerifyMismatchError is a VerificationError; a corrupt stored hash is a failed sign-in
        # for the user (and a log line for the operator), never an exception to the client.
        return False


async def hash_password(password: str) -> str:
    """Return an argon2id PHC string for `password`, computed in a worker thread.

    The caller checks the policy first; this only refuses input too long to hash safely.
    """
    if len(password) > MAX_INPUT_CHARS:
        raise PasswordTooLong()
    # argon2 takes ~55 ms of CPU and releases the GIL: on the event loop it would stall every
    # other request, so it always runs in the default thread pool.
    return await asyncio.to_thread(_hash_sync, password)


async def verify_password(password_hash: str, password: str) -> bool:
    """Tell whether `password` matches `password_hash`, computed in a worker thread."""
    if not isinstance(password, str) or len(password) > MAX_INPUT_CHARS:
        return False
    return await asyncio.to_thread(_verify_sync, password_hash, password)


@functools.cache
def _dummy_hash() -> str:
    return _HASHER.hash(secrets.token_urlsafe(32))


async def verify_against_dummy(password: str) -> bool:
    """Spend the time of one verification and return False, for sign-ins to unknown identities.

    Answering "no such user" faster than "wrong password" would let anyone enumerate accounts
    by timing; callers with no stored hash call this instead of skipping the work.
    """
    dummy = await asyncio.to_thread(_dummy_hash)
    await verify_password(dummy, password)
    return False


def needs_rehash(password_hash: str) -> bool:
    """Tell whether `password_hash` used other parameters than today's (or is unreadable)."""
    if legacy_hashes.is_legacy(password_hash):
        return True
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True
