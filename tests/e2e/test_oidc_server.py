"""Redirect sign-in end to end: a real `crm serve` process, a real OpenID Connect provider
(oidc-provider on Node.js), and a browser stand-in following their redirects."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from crm.runtime import Runtime
from crm.social.redirect import CALLBACK_PATH
from crm.tenants import service as tenants
from tests.support.http_sink import free_port
from tests.support.oidc_provider import Client, OidcProvider, browse, skip_unless_available
from tests.support.server import CrmProcess, crm_env

APP = Client("shop-app", "shop-secret-" + "d" * 32, ["http://127.0.0.1:9/app"])
APP_RETURN = "https://shop.example.com/done"
ACCOUNTS = {"ann": {"email": "ann@example.com", "email_verified": True, "given_name": "Ann"}}


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> Iterator[tuple[str, OidcProvider]]:
    skip_unless_available()
    workdir = tmp_path_factory.mktemp("oidc-e2e")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = Client("shop-web", "web-secret-" + "e" * 32, [base + CALLBACK_PATH])
    provider = OidcProvider([APP, web], ACCOUNTS, workdir).start()
    server = CrmProcess(
        ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        crm_env(database_url, CRM_PUBLIC_URL=base, CRM_WORKER_ENABLED="false"),
        workdir / "serve.log",
        port=port,
    )
    try:
        with server:
            yield base, provider
    finally:
        provider.stop()


async def test_redirect_and_token_sign_in_through_a_real_server(
    stack: tuple[str, OidcProvider], runtime: Runtime, tmp_path: Path
) -> None:
    base, provider = stack
    async with runtime.sessions() as session:
        shop = await tenants.create_tenant(session, runtime.clock, f"Idp {time.time_ns()}")
        await tenants.update_application_settings(
            session, shop.application_id, {"oidc_redirect_urls": APP_RETURN}, []
        )
        await session.commit()
    sk = {"api_key": shop.keys["secret_test"]}
    pk = {"api_key": shop.keys["public_test"]}
    with httpx.Client(base_url=base) as crm:
        setting = {
            "issuer": provider.issuer,
            "client_id": "shop-web",
            "client_secret": "web-secret-" + "e" * 32,
            "audiences": [APP.client_id],
        }
        assert crm.put(
            "/backoffice/v1/identity_providers/oidc", headers=sk, json=setting
        ).is_success
        google = {"issuer": provider.issuer, "client_id": APP.client_id}
        assert crm.put(
            "/backoffice/v1/identity_providers/google", headers=sk, json=google
        ).is_success
        started = crm.get(
            "/self-service/v2/contacts/oidc/oidc",
            headers=pk,
            params={"redirect_url": APP_RETURN, "login_hint": "ann"},
        )
        assert started.status_code == 200, started.text
        with httpx.Client() as browser:
            callback = browse(browser, started.json()["authorization_url"], base + CALLBACK_PATH)
            ended = browser.get(callback)
        assert ended.status_code == 303, ended.text
        location = ended.headers["location"]
        assert location.startswith(APP_RETURN + "?")
        result = dict(parse_qsl(urlsplit(location).query))
        traded = crm.post(
            "/self-service/v2/contacts/authenticate",
            headers=pk,
            json={"provider": "OIDC_OAUTH", "code": result["code"], "state": result["state"]},
        )
        assert traded.status_code == 200, traded.text
        contact = traded.json()["contact"]
        assert contact["first_name"] == "Ann"
        # The app's own Google button (an ID token) reaches the same contact.
        by_token = crm.post(
            "/self-service/v2/contacts/authenticate",
            headers=pk,
            json={"provider": "GOOGLE", "token": provider.id_token(APP, "ann")},
        )
        assert by_token.status_code == 200 and by_token.json()["contact"]["id"] == contact["id"]
        profile = crm.get(
            f"/self-service/v2/contacts/{contact['id']}",
            headers={"Authorization": f"Bearer {by_token.json()['access_token']}"},
        )
        assert profile.json()["email"] == "ann@example.com"
