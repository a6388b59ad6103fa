"""Sign in with Apple's departures from plain OpenID Connect: the scopes and the form_post
response it requires, the client secret the business signs itself (an ES256 JWT made with its
Sign in with Apple key), and the `user` JSON it posts back on the first authorization only."""

from __future__ import annotations

import hashlib
import json
import re

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crm.contacts.contact_fields import ContactFields, unset_if_none
from crm.text import optional_text

# Apple accepts the scopes `name` and `email` (one, both or none): `profile` is not one of them.
# With any scope it answers with an HTTP POST of a form (response_mode=form_post) only.
AUTHORIZE_PARAMETERS = {"scope": "name email", "response_mode": "form_post"}
# Team ids and key ids are Apple's 10-character identifiers (e.g. "ABCDE12345").
ID_PATTERN = re.compile(r"[A-Z0-9]{10}")
MAX_KEY_LENGTH = 4096
# Apple allows a client secret to live six months; one is signed for each code exchange and
# needs to live only as long as that request, so a leaked one is worth little.
SECRET_LIFETIME_SECONDS = 300
MAX_SECRET_LIFETIME_SECONDS = 15_777_000
# The `user` form field: a small JSON object; anything longer is not Apple's and is ignored.
MAX_USER_LENGTH = 2000
MAX_NAME_LENGTH = 200


def load_key(pem: str) -> ec.EllipticCurvePrivateKey:
    """The private key of a .p8 file (PKCS#8 PEM, EC P-256); ValueError saying what is wrong."""
    if len(pem) > MAX_KEY_LENGTH:
        raise ValueError(f"is longer than {MAX_KEY_LENGTH} characters")
    try:
        key = serialization.load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("is not an unencrypted PEM private key (the .p8 file)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("must be an EC P-256 key (ES256), as Apple issues")
    return key


def key_mask(pem: str) -> str:
    """How a stored key is shown: the end of its public key's SHA-256 fingerprint, which tells
    keys apart without revealing anything; sent back as is, it keeps the stored key."""
    public = load_key(pem).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "****" + hashlib.sha256(der).hexdigest()[-8:]


def client_secret(
    *,
    team_id: str,
    key_id: str,
    client_id: str,
    audience: str,
    private_key: str,
    now: float,
    lifetime: int = SECRET_LIFETIME_SECONDS,
) -> str:
    """The client secret Apple's token endpoint takes: a JWT signed ES256 with the business's
    key (header kid = key id; iss = team id, sub = the services id, aud = Apple's issuer)."""
    issued = int(now)
    claims = {
        "iss": team_id,
        "iat": issued,
        "exp": issued + min(lifetime, MAX_SECRET_LIFETIME_SECONDS),
        "aud": audience,
        "sub": client_id,
    }
    return jwt.encode(claims, load_key(private_key), algorithm="ES256", headers={"kid": key_id})


def user_names(raw: str | None) -> ContactFields:
    """first_name and last_name from the `user` JSON Apple posts on the first authorization
    (`{"name": {"firstName", "lastName"}, "email"}`). It is what the browser sent, not signed:
    free text under the usual rules, never the email (the ID token's is the verified one), and
    nothing at all when it is missing or malformed."""
    if not raw or len(raw) > MAX_USER_LENGTH:
        return ContactFields()
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return ContactFields()
    name = document.get("name") if isinstance(document, dict) else None
    if not isinstance(name, dict):
        return ContactFields()
    first, last = (
        optional_text(name.get(key), max_length=MAX_NAME_LENGTH)
        for key in ("firstName", "lastName")
    )
    return ContactFields(first_name=unset_if_none(first), last_name=unset_if_none(last))
