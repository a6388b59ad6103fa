"""One-time sign-in codes: generation, a challenge-bound HMAC to store, and verification."""

from __future__ import annotations

import secrets

from crm.security.crypto import hmac_sha256
from crm.security.secrets import constant_time_equals

DEFAULT_DIGITS = 6
# SP 800-63B section 5.1.3 asks for at least 20 bits of entropy (6 decimal digits ~ 19.9 bits,
# accepted in practice together with the try limits); 10 digits keeps codes typeable.
MIN_DIGITS = 6
MAX_DIGITS = 10
_HMAC_PURPOSE = "otp-code"
_ASCII_DIGITS = frozenset("0123456789")


def _check_digits(digits: int) -> None:
    if not MIN_DIGITS <= digits <= MAX_DIGITS:
        raise ValueError(f"a code has {MIN_DIGITS} to {MAX_DIGITS} digits")


def _is_code(code: object, digits: int) -> bool:
    # str.isdigit() would accept fullwidth, Arabic-Indic and superscript digits; only ASCII
    # 0-9 is a code, so "１２３４５６" can never match "123456".
    return isinstance(code, str) and len(code) == digits and set(code) <= _ASCII_DIGITS


def generate_code(digits: int = DEFAULT_DIGITS) -> str:
    """Return a uniformly random, zero-padded numeric code from the OS CSPRNG."""
    _check_digits(digits)
    # randbelow is unbiased (rejection sampling), unlike random bytes taken modulo 10**n.
    return str(secrets.randbelow(10**digits)).zfill(digits)


def code_hmac(server_secret: str, challenge_id: str, code: str) -> str:
    """Return the value to store for `code`: an HMAC bound to `challenge_id`.

    Only the HMAC is stored, so a database leak reveals no live code; the key lives outside the
    database, so the 10**6 codes cannot be brute-forced offline from the HMAC alone. Binding to
    the challenge id means a stored HMAC copied onto another challenge does not verify there.
    """
    if not isinstance(code, str) or not MIN_DIGITS <= len(code) <= MAX_DIGITS:
        raise ValueError("a code is 6 to 10 ASCII digits")
    if not _is_code(code, len(code)):
        raise ValueError("a code is 6 to 10 ASCII digits")
    cid = challenge_id.encode("utf-8")
    # Length-prefix the id so that no (id, code) pair can be re-split into another pair.
    message = len(cid).to_bytes(4, "big") + cid + code.encode("ascii")
    return hmac_sha256(server_secret, _HMAC_PURPOSE, message)


def verify_code(
    server_secret: str,
    challenge_id: str,
    code: str,
    stored_hmac: str,
    *,
    digits: int = DEFAULT_DIGITS,
) -> bool:
    """Tell whether `code` is the one whose HMAC was stored for `challenge_id`.

    Malformed input (wrong length, non-ASCII digits, not a str) is simply False: the caller
    counts it as a wrong try, and an attacker learns nothing from an exception.
    """
    _check_digits(digits)
    if not _is_code(code, digits) or not isinstance(stored_hmac, str):
        return False
    return constant_time_equals(code_hmac(server_secret, challenge_id, code), stored_hmac)
