"""An app written for CRM.COM's TypeScript SDK (generated from its v2 specification) works
against this server unchanged.

The test drives the requests such an app makes, with the SDK's bodies and headers: every body
is first checked against the reference's request schema (so it has the members the SDK's types
require, filled with empty values where they do not apply), `api_key` is the header the
reference's securitySchemes name, and none is sent on signed-in, refresh, verify-email and
forgotten-password calls. Every answer's status is one the reference documents, and every JSON
answer validates against the reference's response schema.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tests.api.test_selfservice_reference_schemas import REFERENCE, _check, _document, _resolve
from tests.support.selfservice import last_code, last_token, set_policy, unique_phone

pytestmark = pytest.mark.skipif(not REFERENCE.exists(), reason="reference OpenAPI file not found")
V2 = "/self-service/v2/contacts"
PASSWORD = "sdk passphrase horse 1"
NEW_PASSWORD = "sdk passphrase horse 2"
RESET_PASSWORD = "sdk passphrase horse 3"


def _api_key_header() -> str:
    schemes = _document()["components"]["securitySchemes"]
    assert schemes["Public_API_key"]["in"] == "header"
    name: str = schemes["Public_API_key"]["name"]
    return name


class Sdk:
    """The calls of the generated client: path templates, bodies and headers as it sends them."""

    def __init__(self, client: Any, public_key: str | None) -> None:
        self.client = client
        self.public_key = public_key
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.calls: list[str] = []

    async def call(
        self,
        method: str,
        template: str,
        *,
        path: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
        public: bool = False,
        bearer: str | None = None,
    ) -> Any:
        operation = _document()["paths"][template][method]
        if body is not None:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            jsonschema.validate(body, _resolve(schema, _document()))
        headers: dict[str, str] = {}
        if public:
            assert self.public_key is not None
            headers[_api_key_header()] = self.public_key
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        url = template.format(**(path or {}))
        response = await self.client.request(
            method.upper(), url, json=body, params=query, headers=headers
        )
        status = str(response.status_code)
        assert status in operation["responses"], (template, status, response.text)
        assert response.status_code < 300, (template, response.text)
        content = operation["responses"][status].get("content", {}).get("application/json")
        if content is not None:
            _check(response.json(), template, method, status)
        self.calls.append(f"{method.upper()} {template}")
        return response

    def signed_in(self, tokens: dict[str, Any]) -> None:
        self.access_token = tokens["access_token"]
        self.refresh_token = tokens["refresh_token"]


def _authenticate_body(**members: Any) -> dict[str, Any]:
    """The SDK's authenticate body: token, phone and mac_address are required by its types."""
    body = {
        "provider": "EMAIL",
        "username": "",
        "password": "",
        "token": "",
        "phone": {"number": "", "country_code": "CYP"},
        "mac_address": "",
    }
    body.update(members)
    return body


def _identification(**members: Any) -> dict[str, Any]:
    """The SDK's identification: `email` is required by its types, empty for a phone."""
    return {"provider": "PHONE", "email": "", "token": "", "sub": "", **members}


async def test_the_sdk_sequence_works_unchanged(client: Any, runtime: Any, tenant: Any) -> None:
    # CRM.COM's email+password registration answers with tokens and a verification email.
    await set_policy(
        runtime,
        tenant,
        email_password_registration="tokens_first",
        otp_resend_cooldown_seconds=0,
        default_country="CYP",
    )
    sdk = Sdk(client, tenant.keys["public_test"])
    number = unique_phone()

    # Register by phone: a code is sent; validating it signs in.
    registered = await sdk.call(
        "post",
        f"{V2}/register",
        body={
            "first_name": "Ahmed",
            "last_name": "Samir",
            "identification": _identification(phone={"number": number, "country_code": "CYP"}),
            "accept_terms_&_conditions": True,
            "email_opt_out": False,
            "sms_opt_out": False,
            "referral_code": "",
            "pass_code": "",
            "pass_pin ": "",
            "country_of_agreement": "CYP",
            "language_code": "EN",
        },
        public=True,
    )
    validated = await sdk.call(
        "post",
        f"{V2}/validate_otp",
        body={
            "auth_otp": registered.json()["auth_otp"],
            "code": await last_code(runtime, tenant.id),
        },
        public=True,
    )
    sdk.signed_in(validated.json())
    contact_id = validated.json()["contact"]["id"]
    me = {"id": contact_id}

    # Profile read and update with the access token only.
    profile = (await sdk.call("get", f"{V2}/{{id}}", path=me, bearer=sdk.access_token)).json()
    assert profile["phone"] == {
        "id": profile["phone"]["id"],
        "type": "MOBILE",
        "country_code": "CYP",
        "number": number,
    }
    update = {
        "first_name": "Ahmed",
        "middle_name": "K",
        "last_name": "Samir",
        "language_code": "EN",
        "phone": {"type": "MOBILE", "country_code": "CYP", "number": number},
        "demographics": {
            "gender": "MALE",
            "date_of_birth": {"year": 1985, "month": 7, "day": 1},
            "name_day": {"month": 1, "day": 7},
            "statutory_number": "SDK-ST-1",
        },
        "sms_opt_out": False,
        "email_opt_out": True,
        "company_name": "",
    }
    await sdk.call("put", f"{V2}/{{id}}", path=me, body=update, bearer=sdk.access_token)
    profile = (await sdk.call("get", f"{V2}/{{id}}", path=me, bearer=sdk.access_token)).json()
    assert profile["middle_name"] == "K"
    assert profile["phone"]["number"] == number
    assert profile["demographics"]["name_day"] == {"month": 1, "day": 7}
    # What the app read, written back: the same profile.
    await sdk.call("put", f"{V2}/{{id}}", path=me, body=profile, bearer=sdk.access_token)
    again = await sdk.call("get", f"{V2}/{{id}}", path=me, bearer=sdk.access_token)
    assert again.json() == profile

    # Existence check: the number as the app holds it, national.
    exists = await sdk.call("get", V2, query={"phone": number}, public=True)
    assert exists.json() == {"contact_exists": True}

    # Add an email identity with a password (a code is sent to prove it).
    address = f"ahmed.{number}@example.com"
    await sdk.call(
        "post",
        f"{V2}/{{id}}/identities",
        path=me,
        body={"provider": "EMAIL", "email": address, "password": PASSWORD, "token": "", "sub": ""},
        bearer=sdk.access_token,
    )

    # Change the password while signed in.
    await sdk.call(
        "post",
        f"{V2}/{{id}}/change_password",
        path=me,
        body={"password": NEW_PASSWORD},
        bearer=sdk.access_token,
    )

    # Password sign-in with the phone and the new password.
    signed = await sdk.call(
        "post",
        f"{V2}/authenticate",
        body=_authenticate_body(
            provider="PHONE",
            password=NEW_PASSWORD,
            phone={"number": number, "country_code": "CYP"},
        ),
        public=True,
    )
    sdk.signed_in(signed.json())

    # Refresh (no api_key), then sign out.
    refreshed = await sdk.call("post", f"{V2}/refresh", bearer=sdk.refresh_token)
    sdk.signed_in(refreshed.json())
    await sdk.call("post", f"{V2}/{{id}}/sign_out", path=me, body={}, bearer=sdk.access_token)

    # Request and validate a code: by the phone without its calling code, and by authenticate.
    asked = await sdk.call(
        "post",
        f"{V2}/otp",
        body={"method": "SMS", "credentials": [{"name": "PHONE", "value": number}]},
        public=True,
    )
    validated = await sdk.call(
        "post",
        f"{V2}/validate_otp",
        body={"auth_otp": asked.json()["auth_otp"], "code": await last_code(runtime, tenant.id)},
        public=True,
    )
    assert validated.json()["contact"]["id"] == contact_id
    asked = await sdk.call(
        "post",
        f"{V2}/authenticate",
        body=_authenticate_body(provider="PHONE", phone={"number": number, "country_code": "CYP"}),
        public=True,
    )
    validated = await sdk.call(
        "post",
        f"{V2}/validate_otp",
        body={"auth_otp": asked.json()["auth_otp"], "code": await last_code(runtime, tenant.id)},
        public=True,
    )
    sdk.signed_in(validated.json())
    # The code by a document the profile holds.
    asked = await sdk.call(
        "post",
        f"{V2}/otp",
        body={"method": "SMS", "credentials": [{"name": "STATUTORY_ID", "value": "SDK-ST-1"}]},
        public=True,
    )
    validated = await sdk.call(
        "post",
        f"{V2}/validate_otp",
        body={"auth_otp": asked.json()["auth_otp"], "code": await last_code(runtime, tenant.id)},
        public=True,
    )
    assert validated.json()["contact"]["id"] == contact_id

    # Register by email code.
    mail_only = f"code.{number}@example.com"
    registered = await sdk.call(
        "post",
        f"{V2}/register",
        body={
            "first_name": "Maria",
            "last_name": "Code",
            "identification": {
                "provider": "EMAIL",
                "email": mail_only,
                "phone": {"number": "", "country_code": "CYP"},
                "token": "",
                "sub": "",
            },
        },
        public=True,
    )
    assert "auth_otp" in registered.json()
    validated = await sdk.call(
        "post",
        f"{V2}/validate_otp",
        body={
            "auth_otp": registered.json()["auth_otp"],
            "code": await last_code(runtime, tenant.id),
        },
        public=True,
    )
    assert validated.json()["contact"]["is_verified"] is True

    # Register by email and password: tokens, and an email to verify (no api_key on the link).
    with_password = f"pass.{number}@example.com"
    registered = await sdk.call(
        "post",
        f"{V2}/register",
        body={
            "first_name": "Nikos",
            "last_name": "Pass",
            "identification": {"provider": "EMAIL", "email": with_password, "password": PASSWORD},
            "accept_terms_&_conditions": True,
        },
        public=True,
    )
    assert registered.json()["access_token"]
    # Following the emailed link proves the address; the password chosen before the proof ends
    # with it (see the README's tokens_first trade-off): the reset below sets one.
    token = await last_token(runtime, tenant.id, "EMAIL_VERIFICATION")
    await sdk.call("get", f"{V2}/verify_email", query={"token": token})

    # Forgotten password: the request carries the api_key, the change with the token does not.
    await sdk.call("post", f"{V2}/forgot_password", body={"username": with_password}, public=True)
    reset = await last_token(runtime, tenant.id, "PASSWORD_RESET")
    await sdk.call(
        "post", f"{V2}/change_password", body={"token": reset, "password": RESET_PASSWORD}
    )
    signed = await sdk.call(
        "post",
        f"{V2}/authenticate",
        body=_authenticate_body(username=with_password, password=RESET_PASSWORD),
        public=True,
    )
    sdk.signed_in(signed.json())
    nikos = {"id": signed.json()["contact"]["id"]}

    # Unregister.
    await sdk.call("delete", f"{V2}/{{id}}", path=nikos, bearer=sdk.access_token)
    gone = await client.get(
        f"{V2}/{nikos['id']}", headers={"Authorization": f"Bearer {sdk.access_token}"}
    )
    assert gone.status_code == 401

    # Every operation of the sequence was exercised.
    assert {
        f"POST {V2}/register",
        f"POST {V2}/validate_otp",
        f"POST {V2}/otp",
        f"POST {V2}/authenticate",
        f"POST {V2}/refresh",
        f"POST {V2}/{{id}}/sign_out",
        f"GET {V2}/{{id}}",
        f"PUT {V2}/{{id}}",
        f"POST {V2}/{{id}}/identities",
        f"GET {V2}",
        f"POST {V2}/{{id}}/change_password",
        f"POST {V2}/forgot_password",
        f"POST {V2}/change_password",
        f"GET {V2}/verify_email",
        f"DELETE {V2}/{{id}}",
    } <= set(sdk.calls)
