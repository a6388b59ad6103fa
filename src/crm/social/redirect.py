"""Redirect sign-in: the authorization code flow with PKCE (S256), state and nonce.

1. The app asks for an authorization URL for one of its allow-listed redirect URLs (exact match).
   `state`, the PKCE verifier and the nonce are kept here (hashed, or encrypted), single-use,
   for FLOW_TTL_SECONDS.
2. The provider sends the browser to this server's callback (a GET with a query, or, for Apple,
   a POST of a form: response_mode=form_post), which trades the code at the token endpoint
   (with the verifier and the client secret, for Apple one signed for the exchange), verifies
   the ID token and its nonce, and sends the browser on to the app's URL with `code` (a
   one-time result) and `state`.
3. The app trades `code` and `state` for the token object, within RESULT_TTL_SECONDS, once.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.contacts import service as contacts
from crm.contacts.models import Contact
from crm.errors import AppError
from crm.identities import policy as policies
from crm.security.crypto import SecretBox, hmac_sha256
from crm.security.secrets import new_token
from crm.social import apple, configs, jwks, signin
from crm.social.errors import (
    OidcCallbackInvalid,
    OidcProviderUnavailable,
    OidcRedirectNotAllowed,
    OidcResultInvalid,
    OidcStateInvalid,
)
from crm.social.models import OidcFlow

FLOW_TTL_SECONDS = 600
RESULT_TTL_SECONDS = 60
CALLBACK_PATH = "/self-service/v2/contacts/oidc/callback"
SCOPE = "openid email profile"
# What a provider type asks for instead of the standard scope and query response.
AUTHORIZE_PARAMETERS: dict[str, dict[str, str]] = {"apple": apple.AUTHORIZE_PARAMETERS}
MAX_STATE_LENGTH = 200
# Apple's form_post: state, code, id_token, user (about 3 KiB together) and maybe an error.
MAX_FORM_BYTES = 16 * 1024
FORM_FIELDS = ("state", "code", "error", "user")
_FORM_TYPE = "application/x-www-form-urlencoded"
# Ended or expired flows are kept this long after their expiry, then purged (maintenance).
FLOW_RETENTION = timedelta(hours=1)
_STATE = "oidc-state"
_RESULT = "oidc-result"
_SECRETS = "oidc-flow-secrets"


@dataclass(frozen=True, slots=True)
class Ended:
    """Where the callback sends the browser."""

    location: str


def callback_url(public_url: str) -> str:
    return public_url.rstrip("/") + CALLBACK_PATH


def _hash(secret: str, purpose: str, value: str) -> str:
    return hmac_sha256(secret, purpose, value.encode())


def _with_query(url: str, values: dict[str, str]) -> str:
    return url + ("&" if urlsplit(url).query else "?") + urlencode(values)


def read_callback_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """The fields of a form_post callback the flow uses (the others, id_token among them, are
    not needed: the token endpoint's ID token is the one checked). OidcCallbackInvalid for a
    body that is not one plain form of at most MAX_FORM_BYTES, or names a field twice."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != _FORM_TYPE or len(body) > MAX_FORM_BYTES:
        raise OidcCallbackInvalid()
    try:
        pairs = parse_qsl(
            body.decode("ascii"), keep_blank_values=True, max_num_fields=20, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise OidcCallbackInvalid() from None
    found: dict[str, str] = {}
    for name, value in pairs:
        if name in FORM_FIELDS:
            if name in found:
                raise OidcCallbackInvalid()  # which one is the provider's? neither
            found[name] = value
    return found


def redirect_url_problem(raw: str) -> str | None:
    """Why an `oidc_redirect_urls` value is refused, or None: each entry an absolute http(s)
    URL without a fragment (RFC 6749 section 3.1.2), compared later exactly as written."""
    for entry in raw.split(","):
        text = entry.strip()
        try:
            parts = urlsplit(text)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
            return f"{text!r} is not an absolute http(s) URL"
        if parts.fragment or "#" in text:
            return f"{text!r} has a fragment, which a redirect URL may not have"
    return None


def allowed_redirects(raw: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (raw or "").split(",") if part.strip())


async def start(
    session: AsyncSession,
    clock: Clock,
    *,
    secret: str,
    private_allowed: bool,
    public_url: str,
    tenant_id: str,
    mode: str,
    application_id: str | None,
    kind: str,
    redirect_url: str,
    login_hint: str | None = None,
    link_contact_pk: int | None = None,
) -> str:
    """The provider's authorization URL for a new flow."""
    kind = configs.normalize_type(kind)
    policy = await policies.load(session, application_id, mode)
    if redirect_url not in allowed_redirects(policy.oidc_redirect_urls):
        raise OidcRedirectNotAllowed()
    config = await configs.for_sign_in(
        session,
        secret,
        tenant_id=tenant_id,
        mode=mode,
        provider=kind,
        application_id=application_id,
    )
    http = jwks.ProviderHttp(private_allowed=private_allowed)
    discovery = await jwks.CACHE.discovery(http, config.issuer)
    if not discovery.authorization_endpoint or not discovery.token_endpoint:
        raise OidcProviderUnavailable("The provider does not offer the authorization code flow.")
    state, verifier, nonce = new_token(32), new_token(48), new_token(16)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    now = clock.now()
    session.add(
        OidcFlow(
            state_hash=_hash(secret, _STATE, state),
            tenant_id=tenant_id,
            mode=mode,
            application_id=application_id,
            provider_type=kind,
            redirect_url=redirect_url,
            secrets_encrypted=SecretBox(secret, _SECRETS).encrypt(
                json.dumps({"verifier": verifier, "nonce": nonce})
            ),
            link_contact_pk=link_contact_pk,
            created_at=now,
            expires_at=now + timedelta(seconds=FLOW_TTL_SECONDS),
        )
    )
    await session.flush()
    query = {
        "client_id": config.client_id,
        "response_type": "code",
        "redirect_uri": callback_url(public_url),
        "scope": SCOPE,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
        **AUTHORIZE_PARAMETERS.get(kind, {}),
    }
    if login_hint:
        query["login_hint"] = login_hint[:320]
    return _with_query(discovery.authorization_endpoint, query)


async def _exchange(
    http: jwks.ProviderHttp,
    config: configs.ProviderConfig,
    clock: Clock,
    *,
    code: str,
    verifier: str,
    redirect_uri: str,
) -> str:
    discovery = await jwks.CACHE.discovery(http, config.issuer)
    form: dict[str, Any] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": config.client_id,
        "code_verifier": verifier,
    }
    client_secret = config.secret_for_exchange(clock.timestamp())
    if client_secret:
        form["client_secret"] = client_secret
    status, document = await http.request("POST", discovery.token_endpoint, data=form)
    id_token = document.get("id_token") if isinstance(document, dict) else None
    if status != 200 or not isinstance(id_token, str):
        raise OidcProviderUnavailable("The provider did not trade the code for an ID token.")
    return id_token


async def callback(
    session: AsyncSession,
    clock: Clock,
    *,
    secret: str,
    private_allowed: bool,
    public_url: str,
    state: str | None,
    code: str | None,
    error: str | None,
    user: str | None = None,
) -> Ended:
    """End a flow once; the browser goes back to the app with a result or an error code.
    An unknown, used or expired `state` has nowhere safe to go back to: OidcStateInvalid.
    `user` is the JSON Apple posts on an account's first authorization: its names go to a
    contact this sign-in creates."""
    if not state or len(state) > MAX_STATE_LENGTH:
        raise OidcStateInvalid()
    now = clock.now()
    state_hash = _hash(secret, _STATE, state)
    # Ended by one request only: the conditional update is the lock.
    taken = await session.execute(
        update(OidcFlow)
        .where(
            OidcFlow.state_hash == state_hash,
            OidcFlow.called_back_at.is_(None),
            OidcFlow.expires_at > now,
        )
        .values(called_back_at=now)
    )
    flow = await session.get(OidcFlow, state_hash) if taken.rowcount == 1 else None  # type: ignore[attr-defined]
    if flow is None:
        raise OidcStateInvalid()
    try:
        if error or not code or len(code) > 2000:
            raise OidcProviderUnavailable("The provider ended the sign-in without a code.")
        secrets = json.loads(SecretBox(secret, _SECRETS).decrypt(flow.secrets_encrypted))
        config = await configs.for_sign_in(
            session,
            secret,
            tenant_id=flow.tenant_id,
            mode=flow.mode,
            provider=flow.provider_type,
            application_id=flow.application_id,
        )
        http = jwks.ProviderHttp(private_allowed=private_allowed)
        id_token = await _exchange(
            http,
            config,
            clock,
            code=code,
            verifier=secrets["verifier"],
            redirect_uri=callback_url(public_url),
        )
        verified = await signin.verify_token(
            session,
            clock,
            secret=secret,
            private_allowed=private_allowed,
            tenant_id=flow.tenant_id,
            mode=flow.mode,
            application_id=flow.application_id,
            provider=flow.provider_type,
            token=id_token,
            nonce=secrets["nonce"],
            config=config,
        )
        # Writes of a refused sign-in are undone; the flow's end (called_back_at) is kept.
        async with session.begin_nested():
            contact = await signin.contact_for(
                session,
                clock,
                verified,
                tenant_id=flow.tenant_id,
                mode=flow.mode,
                actor=f"oidc:{flow.provider_type}",
                fields=apple.user_names(user) if flow.provider_type == "apple" else None,
                link_contact_pk=flow.link_contact_pk,
            )
    except AppError as exc:
        return Ended(_with_query(flow.redirect_url, {"error": exc.code, "state": state}))
    result = new_token(32)
    flow.result_hash = _hash(secret, _RESULT, result)
    flow.result_contact_pk = contact.pk
    flow.result_expires_at = now + timedelta(seconds=RESULT_TTL_SECONDS)
    await session.flush()
    return Ended(_with_query(flow.redirect_url, {"code": result, "state": state}))


async def trade(
    session: AsyncSession,
    clock: Clock,
    *,
    secret: str,
    tenant_id: str,
    mode: str,
    application_id: str | None,
    code: str,
    state: str,
) -> Contact:
    """The contact a flow's one-time result signs in, for the application that started it."""
    if not code or not state or len(code) > MAX_STATE_LENGTH or len(state) > MAX_STATE_LENGTH:
        raise OidcResultInvalid()
    now = clock.now()
    result_hash = _hash(secret, _RESULT, code)
    taken = await session.execute(
        update(OidcFlow)
        .where(
            OidcFlow.result_hash == result_hash,
            OidcFlow.state_hash == _hash(secret, _STATE, state),
            OidcFlow.tenant_id == tenant_id,
            OidcFlow.mode == mode,
            OidcFlow.application_id == application_id
            if application_id is not None
            else OidcFlow.application_id.is_(None),
            OidcFlow.traded_at.is_(None),
            OidcFlow.result_expires_at > now,
        )
        .values(traded_at=now)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise OidcResultInvalid()
    flow = await session.get(OidcFlow, _hash(secret, _STATE, state))
    if flow is None or flow.result_contact_pk is None:  # pragma: no cover - set together
        raise OidcResultInvalid()
    return await contacts.get_by_pk(session, flow.result_contact_pk)


async def purge_expired(session: AsyncSession, clock: Clock) -> int:
    """Delete flows that can no longer be ended or traded; the count deleted."""
    result = await session.execute(
        delete(OidcFlow).where(OidcFlow.expires_at < clock.now() - FLOW_RETENTION)
    )
    return int(getattr(result, "rowcount", 0) or 0)
