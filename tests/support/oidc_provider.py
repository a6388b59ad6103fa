"""A real OpenID Connect provider for tests: tests/support/oidc/provider.js (the certified
`oidc-provider` package) in a Node.js process on a loopback port, and a browser stand-in (httpx
following the provider's redirects) that signs an account in without a form.

Needs `node` and `npm ci` run in tests/support/oidc (.ci/run does it); without them the tests
that use it skip, saying so.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx
import pytest

from tests.support.http_sink import free_port

FOLDER = Path(__file__).parent / "oidc"
START_TIMEOUT = 20.0
MAX_REDIRECTS = 10


def skip_unless_available() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the OpenID Connect provider tier needs Node.js 20+")
    if not (FOLDER / "node_modules" / "oidc-provider").is_dir():
        pytest.skip(f"run `npm ci` in {FOLDER} for the OpenID Connect provider tier")


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uris: list[str]


@dataclass
class OidcProvider:
    """One provider process; `issuer` is its http://127.0.0.1:<port>."""

    clients: list[Client]
    accounts: dict[str, dict[str, Any]]
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    issuer: str = ""
    _log: Any = field(default=None, repr=False)

    def start(self) -> OidcProvider:
        skip_unless_available()
        port = free_port()
        config = self.workdir / "oidc-config.json"
        config.write_text(
            json.dumps({"clients": [vars(c) for c in self.clients], "accounts": self.accounts})
        )
        self._log = (self.workdir / "oidc-provider.log").open("wb")
        self.process = subprocess.Popen(
            ["node", str(FOLDER / "provider.js"), str(port), str(config)],
            cwd=FOLDER,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.issuer = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.log())
            try:
                if httpx.get(self.issuer + "/.well-known/openid-configuration").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the OpenID Connect provider did not start: " + self.log())

    def log(self) -> str:
        return (self.workdir / "oidc-provider.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()

    def discovery(self) -> dict[str, Any]:
        document: dict[str, Any] = httpx.get(
            self.issuer + "/.well-known/openid-configuration"
        ).json()
        return document

    def id_token(
        self,
        client: Client,
        account: str,
        *,
        nonce: str | None = None,
        scope: str = "openid email profile",
    ) -> str:
        """Sign `account` in at the provider for `client` (code flow with PKCE) and trade the
        code at the token endpoint, as an app would before sending the ID token to crm."""
        verifier = base64.urlsafe_b64encode(b"v" * 48).rstrip(b"=").decode()
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        redirect_uri = client.redirect_uris[0]
        query = {
            "client_id": client.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": "test-state",
            "login_hint": account,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        if nonce is not None:
            query["nonce"] = nonce
        discovery = self.discovery()
        with httpx.Client() as browser:
            location = browse(
                browser, discovery["authorization_endpoint"] + "?" + urlencode(query), redirect_uri
            )
            code = dict(parse_qsl(urlsplit(location).query))["code"]
            answer = browser.post(
                discovery["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "client_id": client.client_id,
                    "client_secret": client.client_secret,
                    "code_verifier": verifier,
                },
            )
        answer.raise_for_status()
        token: str = answer.json()["id_token"]
        return token


def browse(browser: httpx.Client, url: str, stop_at: str) -> str:
    """Follow the provider's redirects from `url` until one leads to `stop_at`; that URL."""
    for _ in range(MAX_REDIRECTS):
        response = browser.get(url)
        if response.status_code not in (302, 303):
            raise AssertionError(f"the provider answered {response.status_code}: {response.text}")
        url = urljoin(url, response.headers["location"])
        if url.startswith(stop_at):
            return url
    raise AssertionError("too many redirects at the provider")
