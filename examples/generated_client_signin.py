"""Example: the seed's sign-in flow through a client generated from /openapi.json.

Generate the client once (openapi-python-client is in the test extras), then run this with the
directory it was written to:

    .venv/bin/openapi-python-client generate --url http://127.0.0.1:8000/openapi.json \\
        --meta none --output-path var/crm_client
    .venv/bin/python examples/generated_client_signin.py --client var/crm_client \\
        --keys-file var/demo-keys.json

1. register a customer by phone (`registerContact`); a one-time code is "sent"
2. read that code from the test outbox (`listOutbox`, test secret key)
3. validate it (`validateOtp`) and receive the token object
4. read the profile with the access token (`getProfile`)

Keys come from CRM_PUBLIC_KEY and CRM_SECRET_KEY_API or `--keys-file`; the server from CRM_URL
(default http://127.0.0.1:8000). Exit status 0 when every step answered as expected, 1 otherwise
(with the error's code and message), 2 for a usage problem (no keys, no generated client).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

DEFAULT_URL = "http://127.0.0.1:8000"
CODE = re.compile(r"\b(\d{6})\b")
OUTBOX_WAIT_SECONDS = 5.0


class Failed(Exception):
    """A step got an answer the flow does not expect."""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url, public_key, secret_key = settings(args)
    api = load_client(args.client)
    number = "99" + f"{secrets.randbelow(10**6):06d}"
    try:
        run(api, url, public_key, secret_key, number)
    except Failed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except api.httpx.HTTPError as exc:
        print(f"FAILED: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print("done: every step answered through the generated client.")
    return 0


class Api:
    """The generated package's modules this flow uses, imported from the --client directory."""

    def __init__(self, package: str) -> None:
        def load(name: str) -> Any:
            return importlib.import_module(f"{package}.{name}")

        self.httpx = importlib.import_module("httpx")
        self.client = load("client")
        self.models = load("models")
        self.register_contact = load("api.self_service.register_contact")
        self.validate_otp = load("api.self_service.validate_otp")
        self.get_profile = load("api.self_service.get_profile")
        self.list_outbox = load("api.back_office.list_outbox")


def load_client(directory: Path) -> Api:
    """Import the package openapi-python-client wrote to `directory` (its name is the folder's)."""
    if not (directory / "client.py").is_file():
        usage(
            f"no generated client in {directory}: run openapi-python-client generate --url "
            f"<server>/openapi.json --meta none --output-path {directory}"
        )
    sys.path.insert(0, str(directory.resolve().parent))
    return Api(directory.resolve().name)


def run(api: Api, url: str, public_key: str, secret_key: str, number: str) -> None:
    phone = f"+357{number}"
    with api.client.Client(base_url=url, timeout=api.httpx.Timeout(10.0)) as http:
        # 1. Register by phone with the public key.
        body = api.models.RegisterIn.from_dict(
            {
                "first_name": "Ahmed",
                "last_name": "Samir",
                "identity": {"provider": "PHONE", "phone_number": number, "country_code": "CYP"},
                "service_acceptance": True,
            }
        )
        registered = expect(
            "registerContact",
            201,
            api.register_contact.sync_detailed(client=http, body=body, api_key=public_key),
        )
        print(f"1. registerContact {phone}: 201, code sent to {registered['obfuscated_value']}")

        # 2. In test mode the code lands in the test outbox instead of an SMS provider.
        code = read_code(api, http, secret_key, phone)
        print(f"2. listOutbox: read code {code} from the test outbox")

        # 3. Validate it (the v2 form: the auth_otp from step 1 and the code).
        grant = expect(
            "validateOtp",
            200,
            api.validate_otp.sync_detailed(
                client=http,
                body=api.models.ValidateIn.from_dict(
                    {"auth_otp": registered["auth_otp"], "code": code}
                ),
                api_key=public_key,
            ),
        )
        contact_id = grant["contact"]["id"]
        print(f"3. validateOtp: signed in as contact {contact_id}")

    # 4. The access token alone reads the profile: an authenticated client, no api_key.
    with api.client.AuthenticatedClient(
        base_url=url, token=grant["access_token"], timeout=api.httpx.Timeout(10.0)
    ) as signed_in:
        profile = expect(
            "getProfile", 200, api.get_profile.sync_detailed(client=signed_in, id=contact_id)
        )
        print(
            f"4. getProfile with the bearer token: {profile['first_name']} {profile['last_name']}"
        )


def read_code(api: Api, http: Any, secret_key: str, phone: str) -> str:
    """The 6-digit code in the newest OTP message to `phone` in the test outbox (bounded poll)."""
    deadline = time.monotonic() + OUTBOX_WAIT_SECONDS
    while True:
        page = expect(
            "listOutbox",
            200,
            api.list_outbox.sync_detailed(
                client=http, recipient=phone, purpose="OTP", size=1, api_key=secret_key
            ),
        )
        if page["content"]:
            match = CODE.search(page["content"][0]["body"])
            if match is None:
                raise Failed(f"no 6-digit code in the outbox message {page['content'][0]!r}")
            return match.group(1)
        if time.monotonic() > deadline:
            raise Failed(f"no code for {phone} in the test outbox after {OUTBOX_WAIT_SECONDS}s")
        time.sleep(0.1)


def expect(step: str, status: int, response: Any) -> Any:
    """The JSON body when the answer has the expected status; otherwise fail with the error."""
    body: Any = None
    if response.content:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
    if int(response.status_code) != status:
        error = body if isinstance(body, dict) and "code" in body else {"code": "?", "message": ""}
        raise Failed(
            f"{step}: expected {status}, got {int(response.status_code)} {error['code']}: "
            f"{error.get('message', '')}"
        )
    return body


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CRM_URL", DEFAULT_URL))
    parser.add_argument(
        "--client",
        type=Path,
        default=Path("var/crm_client"),
        help="the directory openapi-python-client generated the client into",
    )
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
    if not public_key.startswith("pk_test_") or not secret_key.startswith("sk_test_"):
        usage(
            "set CRM_PUBLIC_KEY (pk_test_...) and CRM_SECRET_KEY_API (sk_test_...), "
            "or pass --keys-file var/demo-keys.json"
        )
    return args.url.rstrip("/"), public_key, secret_key


def usage(message: str) -> NoReturn:
    print(f"usage error: {message}", file=sys.stderr)
    raise SystemExit(2)


if __name__ == "__main__":
    sys.exit(main())
