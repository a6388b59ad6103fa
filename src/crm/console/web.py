"""The console's web plumbing: templates, versioned static files, security headers, the signed-in
operator of a request, and the CSRF check of every form."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from crm.api.deps import RuntimeDep, SessionDep
from crm.clock import Clock
from crm.operators import activity, sessions
from crm.operators.activity import Actor
from crm.operators.errors import CsrfRejected, PermissionDenied, TotpRequired
from crm.operators.roles import Permission, can
from crm.security.crypto import hmac_sha256
from crm.settings import Settings
from crm.tenants.models import Tenant
from crm.tenants.schemas import CallerKey
from crm.vocabulary import OperatorAction, OperatorRole

PREFIX = "/console"
HERE = Path(__file__).parent
COOKIE = "crm_console"
LOGIN_COOKIE = "crm_console_login"
# No inline script or style anywhere: every rule of the page comes from this server's files.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
LONG_CACHE = "public, max-age=31536000, immutable"
MAX_FORM_FIELDS = 200
# What an owner who must set up a second factor can still reach.
TOTP_FREE_PATHS = frozenset({PREFIX + "/account", PREFIX + "/account/totp", PREFIX + "/logout"})


class NeedsSignIn(Exception):
    """No live console session: the answer is a redirect to the sign-in page."""

    def __init__(self, next_path: str, *, totp: bool = False) -> None:
        super().__init__(next_path)
        self.next_path = next_path
        # Signed in, but an owner who must first set up a second factor: to the account page.
        self.totp = totp


# -- static files ------------------------------------------------------------------------------


@cache
def static_files() -> dict[str, tuple[str, bytes]]:
    """name -> (content hash, bytes): the hash goes in the URL, so the files can be cached forever."""
    found = {}
    for path in sorted((HERE / "static").iterdir()):
        if path.is_file():
            data = path.read_bytes()
            found[path.name] = (hashlib.sha256(data).hexdigest()[:12], data)
    return found


def static_url(name: str) -> str:
    digest, _ = static_files()[name]
    return f"{PREFIX}/static/{digest}/{name}"


# -- templates ---------------------------------------------------------------------------------


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static_url"] = static_url
    env.globals["Permission"] = Permission
    env.filters["when"] = lambda v: "" if v is None else v.strftime("%Y-%m-%d %H:%M UTC")
    env.filters["urlquote"] = lambda v: quote(str(v), safe="")
    return env


def page(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    html = environment().get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def redirect(url: str, *, flash: str | None = None) -> RedirectResponse:
    """303 after a POST: the browser GETs the next page (a reload does not post again)."""
    if flash:
        url += ("&" if "?" in url else "?") + "done=" + quote(flash[:120], safe="")
    return RedirectResponse(url, status_code=303, headers=PAGE_HEADERS)


# -- the signed-in operator --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Who:
    """The signed-in operator, copied out of the ORM row (a rolled-back form keeps it readable)."""

    id: str
    email: str
    role: str
    tenant_id: str
    totp: bool


@dataclass(frozen=True, slots=True)
class Where:
    """The console session of this request."""

    id: str
    csrf_token: str
    mode: str


@dataclass
class Visit:
    """One request of a signed-in operator: who, of which tenant, in which mode."""

    operator: Who
    session: Where
    tenant_name: str
    secure: bool
    ip_address: str | None = None
    user_agent: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        """The audit trail's "who" for changes made in the console."""
        return f"operator:{self.operator.id}"

    @property
    def acting(self) -> Actor:
        """The activity log's "who" for what this operator does to the platform."""
        return Actor(
            label=self.operator.email,
            operator_id=self.operator.id,
            ip_address=self.ip_address,
            user_agent=self.user_agent,
        )

    def record(
        self,
        session: AsyncSession,
        clock: Clock,
        action: OperatorAction,
        *,
        target: str | None = None,
        detail: Mapping[str, str] | None = None,
    ) -> None:
        """Log what this operator did to the platform, in the request's transaction."""
        activity.record(
            session,
            clock,
            tenant_id=self.tenant_id,
            actor=self.acting,
            action=action,
            target=target,
            detail=detail,
        )

    @property
    def tenant_id(self) -> str:
        return self.operator.tenant_id

    @property
    def mode(self) -> str:
        return self.session.mode

    @property
    def csrf(self) -> str:
        return self.session.csrf_token

    def can(self, permission: Permission) -> bool:
        return can(self.operator.role, permission)

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise PermissionDenied()

    def caller(self, mode: str | None = None) -> CallerKey:
        """The tenant as the Back-Office services know a caller (the console holds no key)."""
        chosen = mode or self.mode
        return CallerKey(
            key_id=None,
            tenant_id=self.tenant_id,
            tenant_name=self.tenant_name,
            application_id=None,
            kind="secret",
            mode="live" if chosen == "live" else "test",
        )

    def context(self, **values: Any) -> dict[str, Any]:
        return {"visit": self, **values}


def lifetimes(settings: Settings) -> sessions.Lifetimes:
    return sessions.Lifetimes(
        idle_seconds=settings.console_session_idle_seconds,
        absolute_seconds=settings.console_session_absolute_seconds,
    )


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


async def signed_in(request: Request, runtime: RuntimeDep, session: SessionDep) -> Visit:
    token = request.cookies.get(COOKIE, "")
    found = await sessions.resolve(session, runtime.clock, token, lifetimes(runtime.settings))
    if found is None:
        path = request.url.path
        if request.method != "GET":
            path = PREFIX + "/"
        raise NeedsSignIn(path)
    row, operator = found
    if (
        runtime.settings.console_owner_totp_required
        and operator.role == OperatorRole.OWNER
        and operator.totp_secret_encrypted is None
        and request.url.path not in TOTP_FREE_PATHS
    ):
        if request.method == "GET":
            raise NeedsSignIn(PREFIX + "/account", totp=True)
        raise TotpRequired()
    tenant = await session.get(Tenant, operator.tenant_id)
    return Visit(
        operator=Who(
            operator.id,
            operator.email,
            operator.role,
            operator.tenant_id,
            operator.totp_secret_encrypted is not None,
        ),
        session=Where(row.id, row.csrf_token, row.mode),
        tenant_name=tenant.name if tenant else "",
        secure=is_secure(request),
        ip_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


VisitDep = Annotated[Visit, Depends(signed_in)]


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded form as one value per name (the first); the body size is bounded upstream."""
    body = await request.body()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    try:
        parsed = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # more fields than any console form has: no form at all
        return {}
    return {name: values[0] for name, values in parsed.items() if values}


async def checked_form(request: Request, visit: VisitDep) -> dict[str, str]:
    """The form of a state-changing request, after its synchronizer token is checked: a missing
    or wrong token is a 403 before anything is read or written."""
    form = await read_form(request)
    sent = form.get("csrf", "")
    if not sent or not hmac.compare_digest(sent.encode(), visit.csrf.encode()):
        raise CsrfRejected()
    return form


FormDep = Annotated[dict[str, str], Depends(checked_form)]


# -- the sign-in form's own CSRF (before there is a session) -------------------------------------


def login_nonce(request: Request) -> tuple[str, bool]:
    """The browser's sign-in nonce (from its cookie) and whether it is new."""
    value = request.cookies.get(LOGIN_COOKIE, "")
    if 20 <= len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum():
        return value, False
    return secrets.token_urlsafe(24), True


def login_token(secret: str, nonce: str) -> str:
    return hmac_sha256(secret, "console-login", nonce.encode())


def login_token_ok(secret: str, request: Request, sent: str) -> bool:
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not sent:
        return False
    return hmac.compare_digest(login_token(secret, nonce).encode(), sent.encode())


def set_cookie(response: Response, name: str, value: str, *, secure: bool, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        secure=secure,
        httponly=True,
        samesite="lax",
    )
