"""Example: a customer signs in through the Self-Service API, end to end, in test mode.

The five steps of CRM.COM's onboarding guide, as an app would call them with httpx:

1. register the guide's customer (Ahmed Samir) by phone; a one-time code is "sent"
2. read that code from the test outbox (test secret key: your test harness, never an app)
3. validate it (the guide's v1 form, by credentials) and receive the token object
4. read the profile with the access token alone, then refresh with the bare Authorization header
5. ask for a new code later (sign in again), then sign out and see the old token refused

Each run registers a new phone number, so it can be run again and again. Keys come from
CRM_PUBLIC_KEY and CRM_SECRET_KEY_API, or from `--keys-file var/demo-keys.json` (what `make run`
writes); the server from CRM_URL (default http://127.0.0.1:8000). Needs only httpx.

    python examples/self_service_signin.py --keys-file var/demo-keys.json

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
MAX_RESEND_WAIT_SECONDS = 60


class Failed(Exception):
    """A step got an answer the walk-through does not expect."""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url, public_key, secret_key = settings(args)
    number = args.phone or "99" + f"{secrets.randbelow(10**6):06d}"
    try:
        with httpx.Client(base_url=url, timeout=10.0) as http:
            run(http, public_key, secret_key, number, wait_resend=args.wait_resend)
    except Failed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"FAILED: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print("done: every step answered as the walk-through says.")
    return 0


def run(
    http: httpx.Client, public_key: str, secret_key: str, number: str, *, wait_resend: bool
) -> None:
    public = {"api_key": public_key}
    phone = f"+357{number}"  # E.164: Cyprus is +357

    # 1. Register with the public key (the guide's body; booleans as strings, as it sends them).
    registered = expect(
        "register",
        201,
        http.post(
            "/self-service/v1/contacts/register",
            headers=public,
            json={
                "first_name": "Ahmed",
                "last_name": "Samir",
                "title": "Mr",
                "identity": {"provider": "PHONE", "phone_number": number, "country_code": "CYP"},
                "service_acceptance": "true",
                "email_opt_out": "true",
                "sms_opt_out": "true",
            },
        ),
    )
    print(
        f"1. registered {phone}: 201, code sent to {registered['obfuscated_value']} "
        f"(auth_otp {registered['auth_otp']})"
    )

    # 2. In test mode the code lands in the test outbox instead of an SMS provider.
    first_id, code = read_code(http, secret_key, phone)
    print(f"2. read code {code} from the test outbox")

    # 3. Validate, the guide's v1 form: credentials + code (the newest live code for that phone).
    grant = expect(
        "validate-otp",
        200,
        http.post(
            "/self-service/v1/contacts/validate-otp",
            headers=public,
            json={"credentials": [{"name": "PHONE", "value": phone}], "code": code},
        ),
    )
    contact_id = grant["contact"]["id"]
    print(
        f"3. signed in: contact {contact_id}, access token {short(grant['access_token'])}, "
        f"expires {grant['expiration_date']}, organisation {grant['organisations'][0]['name']}"
    )

    # 4a. Once signed in, the access token alone is enough: no api_key.
    profile = expect(
        "read profile",
        200,
        http.get(f"/self-service/v2/contacts/{contact_id}", headers=bearer(grant["access_token"])),
    )
    print(
        f"4. profile with the bearer token only: {profile.get('first_name')} "
        f"{profile.get('last_name')}"
    )

    # 4b. Refresh: the refresh token in a bare Authorization header (the guide's curl).
    renewed = expect(
        "refresh",
        200,
        http.post(
            "/self-service/v1/contacts/refresh",
            headers={"Authorization": grant["refresh_token"]},
        ),
    )
    print(
        f"   refreshed: new access token {short(renewed['access_token'])}, "
        f"refresh token rotated: {renewed['refresh_token'] != grant['refresh_token']}"
    )

    # 5a. Sign in again later: ask for a new code. The application's resend cooldown (30 s by
    # default) answers 429 with Retry-After when asked too soon after the last code.
    second: str | None = None  # the access token of a second session, if step 5 opens one
    otp_request = {"method": "SMS", "credentials": [{"name": "PHONE", "value": phone}]}
    answer = http.post("/self-service/v2/contacts/otp", headers=public, json=otp_request)
    label = "5."
    if answer.status_code == 429 and wait_resend:
        wait = int(answer.headers.get("Retry-After", "1"))
        if wait > MAX_RESEND_WAIT_SECONDS:
            raise Failed(f"new code: Retry-After {wait}s is longer than this example waits")
        print(f"5. new code: 429 {error_of(answer)['code']}, waiting the Retry-After of {wait}s...")
        label = "  "
        time.sleep(wait)
        answer = http.post("/self-service/v2/contacts/otp", headers=public, json=otp_request)
    if answer.status_code == 429:
        error = error_of(answer)
        print(
            f"5. new code: 429 {error['code']} (Retry-After: {answer.headers.get('Retry-After')}s)"
            " - a new code may be asked for only after the resend cooldown; an app shows a"
            " countdown. Skipped here (run with --wait-resend to wait it out)."
        )
    else:
        sent = expect("new code", 200, answer)
        _, new_code = read_code(http, secret_key, phone, after=first_id)
        again = expect(
            "validate_otp",
            200,
            http.post(
                "/self-service/v2/contacts/validate_otp",
                headers=public,
                json={"auth_otp": sent["auth_otp"], "code": new_code},
            ),
        )
        print(
            f"{label} new code {new_code} sent to {sent['obfuscated_value']} and validated (v2 form): "
            f"a second session, access token {short(again['access_token'])}"
        )
        second = again["access_token"]

    # 5b. Sign out this session; its tokens are refused at once.
    expect(
        "sign out",
        204,
        http.post(
            f"/self-service/v2/contacts/{contact_id}/sign_out",
            headers=bearer(renewed["access_token"]),
        ),
    )
    refused = http.get(
        f"/self-service/v2/contacts/{contact_id}", headers=bearer(renewed["access_token"])
    )
    if refused.status_code != 401:
        raise Failed(f"after sign-out the access token should be refused with 401, got {refused}")
    error = error_of(refused)
    print(f"   signed out: the old access token is refused: 401 {error['code']}")
    stale = http.post(
        "/self-service/v1/contacts/refresh", headers={"Authorization": renewed["refresh_token"]}
    )
    if stale.status_code != 401:
        raise Failed(f"after sign-out the refresh token should be refused with 401, got {stale}")
    print(f"   and so is its refresh token: 401 {error_of(stale)['code']}")
    if second is not None:
        # Sign-out ends one session: the one opened by the new code is still signed in.
        expect(
            "read profile in the other session",
            200,
            http.get(f"/self-service/v2/contacts/{contact_id}", headers=bearer(second)),
        )
        print("   the session opened with the new code is still signed in: 200")


# -- helpers --------------------------------------------------------------------------------


def read_code(
    http: httpx.Client, secret_key: str, phone: str, *, after: str | None = None
) -> tuple[str, str]:
    """The newest OTP message to `phone` in the test outbox (one other than `after`): its id
    and the 6-digit code in its text. Messages are written when the request commits, so the
    first look normally finds it; the short poll only covers a slow disk."""
    deadline = time.monotonic() + OUTBOX_WAIT_SECONDS
    while True:
        page = expect(
            "read the test outbox",
            200,
            http.get(
                "/backoffice/v1/outbox",
                headers={"api_key": secret_key},
                params={"recipient": phone, "purpose": "OTP", "size": 1},
            ),
        )
        newest = page["content"][0] if page["content"] else None
        if newest is not None and newest["id"] != after:
            match = CODE.search(newest["body"])
            if match is None:
                raise Failed(f"no 6-digit code in the outbox message {newest['body']!r}")
            return newest["id"], match.group(1)
        if time.monotonic() > deadline:
            raise Failed(f"no new code for {phone} in the test outbox after {OUTBOX_WAIT_SECONDS}s")
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


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def short(token: str) -> str:
    return token[:12] + "..."


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CRM_URL", DEFAULT_URL))
    parser.add_argument(
        "--keys-file", type=Path, help="JSON with keys.public_test and keys.secret_test"
    )
    parser.add_argument(
        "--phone", help="Cypriot national number to register (default: a new one per run)"
    )
    parser.add_argument(
        "--wait-resend", action="store_true", help="wait out the resend cooldown in step 5"
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
            "set CRM_PUBLIC_KEY (pk_test_...) and CRM_SECRET_KEY_API (sk_test_...), "
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
