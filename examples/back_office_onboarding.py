"""Example: the business's server onboards a contact through the Back-Office API, then it signs in.

CRM.COM's onboarding guide, Back-Office steps 1 and 2, with httpx:

1. create a contact with the business's own id and cross-reference code, retry-safe with an
   Idempotency-Key (sent twice here: the second answer is the first one, replayed)
2. give it sign-in credentials: an EMAIL identity the business has already verified
3. find it again: search by email, read it by its code
4. the contact signs in through the Self-Service API: ask for a code by email, read it from the
   test outbox, validate it, read the profile with the access token

Each run uses a new id, code and email address, so it can be run again. Keys come from
CRM_SECRET_KEY_API and CRM_PUBLIC_KEY, or from `--keys-file var/demo-keys.json` (what `make run`
writes); the server from CRM_URL (default http://127.0.0.1:8000). Needs only httpx.

    python examples/back_office_onboarding.py --keys-file var/demo-keys.json

Exit status 0 when every step answered as expected, 1 otherwise (with the error's code and
message), 2 for a usage problem.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
CODE = re.compile(r"\b(\d{6})\b")
OUTBOX_WAIT_SECONDS = 5.0


class Failed(Exception):
    """A step got an answer the walk-through does not expect."""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url, public_key, secret_key = settings(args)
    suffix = secrets.token_hex(4)
    try:
        with httpx.Client(base_url=url, timeout=10.0) as http:
            run(http, public_key, secret_key, suffix)
    except Failed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"FAILED: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print("done: every step answered as the walk-through says.")
    return 0


def run(http: httpx.Client, public_key: str, secret_key: str, suffix: str) -> None:
    back_office = {"api_key": secret_key}
    contact_id = f"ext-{suffix}"  # your own id: up to 36 letters, digits, '-' and '_'
    code = f"CRM-{suffix}"  # your cross-reference code: unique, immutable
    email = f"maria.georgiou+{suffix}@example.com"

    # 1. Create, retry-safe: the same Idempotency-Key and body give the first answer again.
    body = {
        "id": contact_id,
        "code": code,
        "first_name": "Maria",
        "last_name": "Georgiou",
        "email_address": email,
        "phones": [
            {
                "phone_type": "MOBILE",
                "country_code": "CYP",
                "number": "99 123456",
                "is_primary": True,
            }
        ],
    }
    retry_safe = {**back_office, "Idempotency-Key": f"import-{suffix}"}
    first = http.post("/backoffice/v1/contacts", headers=retry_safe, json=body)
    created = expect("create contact", 201, first)
    print(f"1. created contact: 201 {json.dumps(created)}")
    second = http.post("/backoffice/v1/contacts", headers=retry_safe, json=body)
    replayed = expect("create contact again (same Idempotency-Key)", 201, second)
    if replayed != created:
        raise Failed(f"the retry answered {replayed}, not the first answer {created}")
    print(
        f"   sent again with the same Idempotency-Key: {second.status_code} "
        f"{json.dumps(replayed)} (Idempotent-Replayed: {second.headers.get('Idempotent-Replayed')})"
        " - the same answer, nothing created twice"
    )

    # 2. Credentials: an EMAIL identity, marked verified because the business checked it.
    identity = expect(
        "add identity",
        201,
        http.post(
            f"/backoffice/v1/contacts/{contact_id}/identities",
            headers=back_office,
            json={"provider": "EMAIL", "email": email, "verified": True},
        ),
    )
    print(f"2. added a verified EMAIL identity {email}: 201 (identity {identity['id']})")

    # 3. Search (by email here; names, codes and phones work too), and read it by its code.
    found = expect(
        "search",
        200,
        http.get("/backoffice/v1/contacts", headers=back_office, params={"search_value": email}),
    )
    ids = [c["id"] for c in found["content"]]
    if contact_id not in ids:
        raise Failed(f"search for {email} did not find {contact_id} (found {ids})")
    print(f"3. search_value={email}: found {ids}")
    by_code = expect(
        "read by code", 200, http.get(f"/backoffice/v1/contacts/{code}", headers=back_office)
    )
    print(
        f"   GET /backoffice/v1/contacts/{code}: {by_code['first_name']} {by_code['last_name']}, "
        f"id {by_code['id']}"
    )

    # 4. Maria signs in to your app (Self-Service API, public key): a code by email...
    public = {"api_key": public_key}
    sent = expect(
        "request a code",
        200,
        http.post(
            "/self-service/v2/contacts/otp",
            headers=public,
            json={"method": "EMAIL", "credentials": [{"name": "EMAIL", "value": email}]},
        ),
    )
    otp = read_code(http, secret_key, email)
    print(f"4. code sent to {sent['obfuscated_value']}; read {otp} from the test outbox")
    grant = expect(
        "validate_otp",
        200,
        http.post(
            "/self-service/v2/contacts/validate_otp",
            headers=public,
            json={"auth_otp": sent["auth_otp"], "code": otp},
        ),
    )
    signed_in = grant["contact"]
    if signed_in["id"] != contact_id:
        raise Failed(f"signed in as {signed_in['id']}, expected {contact_id}")
    print(f"   signed in as {signed_in['id']} (code {signed_in.get('code')})")
    profile = expect(
        "read profile",
        200,
        http.get(
            f"/self-service/v2/contacts/{contact_id}",
            headers={"Authorization": f"Bearer {grant['access_token']}"},
        ),
    )
    print(
        f"   profile with the access token: {profile.get('first_name')} {profile.get('last_name')}"
    )


# -- helpers --------------------------------------------------------------------------------


def read_code(http: httpx.Client, secret_key: str, recipient: str) -> str:
    """The 6-digit code in the newest OTP message to `recipient` in the test outbox."""
    deadline = time.monotonic() + OUTBOX_WAIT_SECONDS
    while True:
        page = expect(
            "read the test outbox",
            200,
            http.get(
                "/backoffice/v1/outbox",
                headers={"api_key": secret_key},
                params={"recipient": recipient, "purpose": "OTP", "size": 1},
            ),
        )
        if page["content"]:
            match = CODE.search(page["content"][0]["body"])
            if match is None:
                raise Failed(f"no 6-digit code in {page['content'][0]['body']!r}")
            return match.group(1)
        if time.monotonic() > deadline:
            raise Failed(f"no code for {recipient} in the test outbox after {OUTBOX_WAIT_SECONDS}s")
        time.sleep(0.1)


def expect(step: str, status: int, response: httpx.Response) -> Any:
    """The JSON body when the answer has the expected status; otherwise fail with the error."""
    if response.status_code != status:
        error = error_of(response)
        raise Failed(
            f"{step}: expected {status}, got {response.status_code} {error['code']}: "
            f"{error['message']}"
            + (f" (request_id {error['request_id']})" if error.get("request_id") else "")
        )
    return response.json() if response.content else None


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The server's error body `{"code", "message", "details", "request_id"}`, or a stand-in."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "code" in body:
        return body
    return {"code": "?", "message": response.text[:200] or response.reason_phrase}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CRM_URL", DEFAULT_URL))
    parser.add_argument(
        "--keys-file", type=Path, help="JSON with keys.public_test and keys.secret_test"
    )
    return parser.parse_args(argv)


def settings(args: argparse.Namespace) -> tuple[str, str, str]:
    """Server URL, public test key, secret test key; exits with status 2 when keys are missing."""
    public_key = os.environ.get("CRM_PUBLIC_KEY", "")
    secret_key = os.environ.get("CRM_SECRET_KEY_API", "")
    if args.keys_file is not None:
        try:
            keys = json.loads(args.keys_file.read_text())["keys"]
            public_key, secret_key = keys["public_test"], keys["secret_test"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            usage(f"cannot read test keys from {args.keys_file}: {exc!r}")
    if not public_key or not secret_key:
        usage(
            "set CRM_SECRET_KEY_API (sk_test_...) and CRM_PUBLIC_KEY (pk_test_...), "
            "or pass --keys-file var/demo-keys.json"
        )
    if not public_key.startswith("pk_test_") or not secret_key.startswith("sk_test_"):
        usage("this example reads codes from the test outbox: use pk_test_ and sk_test_ keys")
    return args.url.rstrip("/"), public_key, secret_key


def usage(message: str) -> NoReturn:
    print(f"usage error: {message}", file=sys.stderr)
    raise SystemExit(2)


if __name__ == "__main__":
    sys.exit(main())
