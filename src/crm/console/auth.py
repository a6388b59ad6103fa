"""Signing in and out of the console, the operator's own sessions, and the test/live switch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from crm.api.deps import RuntimeDep, SessionDep
from crm.console.forms import problem
from crm.console.web import (
    COOKIE,
    LOGIN_COOKIE,
    PREFIX,
    FormDep,
    Visit,
    VisitDep,
    lifetimes,
    login_nonce,
    login_token,
    login_token_ok,
    page,
    read_form,
    redirect,
    set_cookie,
)
from crm.errors import AppError, RateLimited
from crm.operators import activity, service, sessions
from crm.operators.activity import Actor
from crm.operators.errors import CsrfRejected
from crm.operators.models import OperatorSession
from crm.runtime import Runtime
from crm.security import totp
from crm.vocabulary import OperatorAction

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _safe_next(value: str | None) -> str:
    """Only a path of this console: an open redirect would lend our name to a phishing page."""
    if (
        not value
        or not value.startswith(PREFIX + "/")
        or value.startswith("//")
        or "\\" in value
        or len(value) > 500
        or any(ch in value for ch in "\r\n")
    ):
        return PREFIX + "/"
    return value


def _login_page(
    request: Request,
    secret: str,
    *,
    email: str = "",
    error: str | None = None,
    next_path: str = "",
    status_code: int = 200,
) -> Response:
    nonce, new = login_nonce(request)
    response = page(
        request,
        "login.html",
        {
            "visit": None,
            "email": email,
            "error": error,
            "next": _safe_next(next_path),
            "login_csrf": login_token(secret, nonce),
        },
        status_code=status_code,
    )
    if new:
        set_cookie(
            response, LOGIN_COOKIE, nonce, secure=request.url.scheme == "https", max_age=3600
        )
    return response


async def _record_failure(
    session: AsyncSession, runtime: Runtime, request: Request, *, email: str, reason: str
) -> None:
    """A failed sign-in of a known operator goes to that tenant's log (an unknown address has
    no tenant to tell; the throttle still counts it)."""
    operator = await service.find_by_email(session, email)
    if operator is None:
        return
    activity.record(
        session,
        runtime.clock,
        tenant_id=operator.tenant_id,
        actor=Actor(
            operator.email,
            operator.id,
            request.client.host if request.client else None,
            request.headers.get("user-agent"),
        ),
        action=OperatorAction.SIGN_IN_FAILED,
        detail={"reason": reason},
    )


@router.get("/login")
async def login_form(request: Request, runtime: RuntimeDep, next: str = "") -> Response:
    return _login_page(request, runtime.secret, next_path=next)


@router.post("/login")
async def login(request: Request, runtime: RuntimeDep, session: SessionDep) -> Response:
    form = await read_form(request)
    if not login_token_ok(runtime.secret, request, form.get("csrf", "")):
        raise CsrfRejected()
    email = form.get("email", "")[:320]
    settings = runtime.settings
    try:
        operator = await service.authenticate(
            session,
            runtime.clock,
            runtime.secret,
            email=email,
            password=form.get("password", ""),
            code=form.get("code", "")[:20],
            client_address=request.client.host if request.client else None,
            policy=service.sign_in_policy(
                lock_threshold=settings.console_lock_threshold,
                lock_seconds=settings.console_lock_seconds,
            ),
        )
    except AppError as exc:
        # Returned, not raised: the failure count this attempt added is committed, and so is
        # the activity entry of a failed attempt on a known operator.
        await _record_failure(session, runtime, request, email=email, reason=exc.code)
        status = 429 if isinstance(exc, RateLimited) else exc.status_code
        return _login_page(
            request,
            runtime.secret,
            email=email,
            error=exc.message,
            next_path=form.get("next", ""),
            status_code=status,
        )
    # A new session, a new token: whatever cookie the browser brought is never promoted.
    old = request.cookies.get(COOKIE)
    if old:
        found = await sessions.resolve(session, runtime.clock, old, lifetimes(settings))
        if found is not None:
            await sessions.end(
                session, runtime.clock, operator_id=found[1].id, session_id=found[0].id
            )
    address = request.client.host if request.client else None
    user_agent = request.headers.get("user-agent")
    token, _ = await sessions.start(
        session,
        runtime.clock,
        operator=operator,
        mode="test",
        user_agent=user_agent,
        ip_address=address,
    )
    activity.record(
        session,
        runtime.clock,
        tenant_id=operator.tenant_id,
        actor=Actor(operator.email, operator.id, address, user_agent),
        action=OperatorAction.SIGNED_IN,
    )
    response = redirect(_safe_next(form.get("next")))
    set_cookie(
        response,
        COOKIE,
        token,
        secure=request.url.scheme == "https",
        max_age=settings.console_session_absolute_seconds,
    )
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
async def logout(
    visit: VisitDep, form: FormDep, runtime: RuntimeDep, session: SessionDep
) -> Response:
    await sessions.end(
        session, runtime.clock, operator_id=visit.operator.id, session_id=visit.session.id
    )
    visit.record(
        session,
        runtime.clock,
        OperatorAction.SIGNED_OUT,
    )
    response = redirect(PREFIX + "/login")
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


@router.get("/account")
async def account(
    request: Request, visit: VisitDep, runtime: RuntimeDep, session: SessionDep, done: str = ""
) -> Response:
    rows = await sessions.list_live(
        session, runtime.clock, visit.operator.id, lifetimes(runtime.settings)
    )
    return _account_page(request, visit, rows, done=done)


def _account_page(
    request: Request,
    visit: Visit,
    rows: list[OperatorSession],
    *,
    done: str = "",
    error: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    # A new secret on each view until one is confirmed: it is the operator's own, shown to them.
    fresh = totp.new_secret()
    return page(
        request,
        "account.html",
        visit.context(
            sessions=rows,
            done=done,
            error=error,
            totp_secret=fresh,
            totp_uri=totp.provisioning_uri(fresh, visit.operator.email, f"crm {visit.tenant_name}"),
        ),
        status_code=status_code,
    )


@router.post("/account/totp")
async def enrol_totp(
    request: Request, visit: VisitDep, form: FormDep, runtime: RuntimeDep, session: SessionDep
) -> Response:
    operator = await service.get_operator(session, visit.operator.id, visit.tenant_id)
    try:
        await service.enrol_totp(
            session,
            runtime.clock,
            runtime.secret,
            operator,
            totp_secret=form.get("totp_secret", "")[:64],
            code=form.get("code", "")[:20],
        )
    except AppError as exc:
        await session.rollback()
        rows = await sessions.list_live(
            session, runtime.clock, visit.operator.id, lifetimes(runtime.settings)
        )
        return _account_page(request, visit, rows, error=problem(exc), status_code=exc.status_code)
    visit.record(
        session,
        runtime.clock,
        OperatorAction.TOTP_ENROLLED,
    )
    return redirect(PREFIX + "/account", flash="Two-factor sign-in is on.")


@router.post("/account/sessions/{session_id}/end")
async def end_session(
    session_id: str, visit: VisitDep, form: FormDep, runtime: RuntimeDep, session: SessionDep
) -> Response:
    if await sessions.end(
        session, runtime.clock, operator_id=visit.operator.id, session_id=session_id
    ):
        visit.record(
            session,
            runtime.clock,
            OperatorAction.SESSION_ENDED,
            target=session_id,
        )
    if session_id == visit.session.id:
        response = redirect(PREFIX + "/login")
        response.delete_cookie(COOKIE, path=PREFIX)
        return response
    return redirect(PREFIX + "/account", flash="Session ended.")


@router.post("/mode")
async def switch_mode(visit: VisitDep, form: FormDep, session: SessionDep) -> Response:
    await sessions.set_mode(session, visit.session.id, form.get("mode", "test"))
    return redirect(_safe_next(form.get("next")))
