"""Console pages of the platform: the tenant's message providers (with a test message), its
applications and keys, and the outbox."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from crm.api.deps import RuntimeDep, SessionDep
from crm.console.forms import problem
from crm.console.web import PREFIX, FormDep, Visit, VisitDep, page, redirect
from crm.errors import AppError, NotFound
from crm.messaging import integrations
from crm.messaging import service as outbox
from crm.messaging.models import OutboxMessage
from crm.messaging.probe import send_test_message
from crm.operators.roles import Permission
from crm.runtime import Runtime
from crm.tenants import service as tenants
from crm.tenants.schemas import KeyKind, KeyMode
from crm.vocabulary import OperatorAction

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# The settings each provider's form shows; secrets are password boxes that are never filled.
PROVIDER_FIELDS: dict[str, dict[str, list[tuple[str, bool]]]] = {
    "SMS": {
        "webhook": [("url", False), ("signing_secret", True)],
        "twilio": [("account_sid", False), ("auth_token", True), ("from_number", False)],
        "console": [],
    },
    "EMAIL": {
        "smtp": [
            ("host", False),
            ("port", False),
            ("from_address", False),
            ("username", False),
            ("password", True),
        ],
        "console": [],
    },
}


class KeyNotFound(NotFound):
    code = "CONSOLE_KEY_NOT_FOUND"
    message = "No such key of this tenant."


class MessageNotFound(NotFound):
    code = "CONSOLE_MESSAGE_NOT_FOUND"
    message = "No such message of this tenant."


async def _integrations_page(
    request: Request,
    visit: Visit,
    session: AsyncSession,
    runtime: Runtime,
    *,
    outcome: dict[str, Any] | None = None,
    done: str = "",
    status_code: int = 200,
) -> Response:
    views = {
        channel: await integrations.get_integration(
            session, runtime.settings, runtime.secret, visit.tenant_id, channel
        )
        for channel in PROVIDER_FIELDS
    }
    return page(
        request,
        "integrations.html",
        visit.context(
            views=views,
            provider_fields=PROVIDER_FIELDS,
            outcome=outcome or {},
            done=done,
        ),
        status_code=status_code,
    )


@router.get("/integrations")
async def show_integrations(
    request: Request, visit: VisitDep, session: SessionDep, runtime: RuntimeDep, done: str = ""
) -> Response:
    visit.require(Permission.INTEGRATIONS)
    return await _integrations_page(request, visit, session, runtime, done=done)


@router.post("/integrations/{channel}")
async def save_integration(
    channel: str,
    request: Request,
    visit: VisitDep,
    form: FormDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    visit.require(Permission.INTEGRATIONS)
    channel = channel.upper()
    provider = form.get("provider", "")
    fields = PROVIDER_FIELDS.get(channel, {}).get(provider, [])
    config: dict[str, Any] = {}
    for name, _secret in fields:
        value = form.get(f"{provider}.{name}", "").strip()
        if value:  # an empty secret box keeps the stored secret
            config[name] = value
    removing = form.get("action") == "reset"
    try:
        if removing:
            await integrations.delete_integration(
                session, runtime.settings, visit.caller("live"), channel
            )
        else:
            await integrations.put_integration(
                session,
                runtime.settings,
                runtime.secret,
                runtime.clock,
                visit.caller("live"),
                channel,
                provider,
                config,
            )
    except AppError as exc:
        await session.rollback()
        outcome = {"channel": channel, "error": problem(exc)}
        return await _integrations_page(
            request, visit, session, runtime, outcome=outcome, status_code=exc.status_code
        )
    visit.record(
        session,
        runtime.clock,
        OperatorAction.INTEGRATION_REMOVED if removing else OperatorAction.INTEGRATION_SAVED,
        target=channel,
        # Which settings changed, never their values: secrets stay out of the log.
        detail=None if removing else {"provider": provider, "changed": ", ".join(sorted(config))},
    )
    return redirect(f"{PREFIX}/integrations", flash=f"{channel} provider saved.")


@router.post("/integrations/{channel}/test")
async def test_integration(
    channel: str,
    request: Request,
    visit: VisitDep,
    form: FormDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    visit.require(Permission.INTEGRATIONS)
    try:
        result = await send_test_message(
            session,
            runtime.settings,
            runtime.secret,
            tenant_id=visit.tenant_id,
            tenant_name=visit.tenant_name,
            channel=channel,
            recipient=form.get("recipient", ""),
        )
    except AppError as exc:
        refused = {"channel": channel.upper(), "error": problem(exc)}
        return await _integrations_page(
            request, visit, session, runtime, outcome=refused, status_code=exc.status_code
        )
    visit.record(
        session,
        runtime.clock,
        OperatorAction.TEST_MESSAGE_SENT,
        target=channel.upper(),
        detail={"provider": result.provider, "outcome": "accepted" if result.ok else "refused"},
    )
    outcome: dict[str, Any] = {"channel": channel.upper(), "test": result}
    return await _integrations_page(request, visit, session, runtime, outcome=outcome)


async def _applications_page(
    request: Request,
    visit: Visit,
    session: AsyncSession,
    *,
    shown_keys: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
    done: str = "",
    status_code: int = 200,
) -> Response:
    apps = await tenants.list_applications(session, visit.tenant_id)
    keys = await tenants.list_keys(session, visit.tenant_id)
    return page(
        request,
        "applications.html",
        visit.context(
            applications=apps,
            keys=keys,
            shown_keys=shown_keys or {},
            error=error,
            done=done,
        ),
        status_code=status_code,
    )


@router.get("/applications")
async def show_applications(
    request: Request, visit: VisitDep, session: SessionDep, done: str = ""
) -> Response:
    visit.require(Permission.APPLICATIONS)
    return await _applications_page(request, visit, session, done=done)


@router.post("/applications")
async def create_application(
    request: Request, visit: VisitDep, form: FormDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    visit.require(Permission.APPLICATIONS)
    try:
        application_id, keys = await tenants.create_application(
            session, runtime.clock, visit.tenant_id, form.get("name", "")
        )
    except AppError as exc:
        await session.rollback()
        failed = problem(exc)
        failed["fields"].setdefault("name", exc.message)
        return await _applications_page(
            request, visit, session, error=failed, status_code=exc.status_code
        )
    visit.record(
        session,
        runtime.clock,
        OperatorAction.APPLICATION_CREATED,
        target=application_id,
        detail={"name": form.get("name", "").strip()[:200]},
    )
    # The keys are shown on this answer only (never stored in the clear, never shown again).
    return await _applications_page(request, visit, session, shown_keys=keys)


@router.post("/keys")
async def create_key(
    request: Request, visit: VisitDep, form: FormDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    visit.require(Permission.APPLICATIONS)
    kind: KeyKind = "public" if form.get("kind") == "public" else "secret"
    mode: KeyMode = "live" if form.get("mode") == "live" else "test"
    application_id = form.get("application_id") or None
    if application_id is not None:
        owned = {a.id for a in await tenants.list_applications(session, visit.tenant_id)}
        if application_id not in owned:
            raise KeyNotFound()
    created = await tenants.create_key(
        session,
        runtime.clock,
        visit.tenant_id,
        kind,
        mode,
        application_id,
    )
    visit.record(
        session,
        runtime.clock,
        OperatorAction.KEY_CREATED,
        target=created.id,
        detail={"kind": kind, "mode": mode},
    )
    return await _applications_page(
        request, visit, session, shown_keys={f"{kind}_{mode}": created.key}
    )


@router.post("/keys/{key_id}/revoke")
async def revoke_key(
    key_id: str, visit: VisitDep, form: FormDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    visit.require(Permission.APPLICATIONS)
    if key_id not in {k.id for k in await tenants.list_keys(session, visit.tenant_id)}:
        raise KeyNotFound()
    await tenants.revoke_key(session, runtime.clock, key_id)
    visit.record(
        session,
        runtime.clock,
        OperatorAction.KEY_REVOKED,
        target=key_id,
    )
    runtime.keys.clear()
    return redirect(f"{PREFIX}/applications", flash="Key revoked.")


@router.get("/messages")
async def show_messages(
    request: Request,
    visit: VisitDep,
    session: SessionDep,
    runtime: RuntimeDep,
    status: str = "",
    done: str = "",
) -> Response:
    visit.require(Permission.MESSAGES_READ)
    wanted = status if status in outbox.STATUSES else None
    rows = await outbox.list_messages(session, status=wanted, tenant_id=visit.tenant_id, limit=200)
    rows = [m for m in rows if m.mode == visit.mode][:50]
    codes: dict[str, str] = {}
    # Test-mode bodies (the codes) as the test outbox API shows them, to those who manage
    # messages; live bodies are never shown to anyone.
    if visit.mode == "test" and visit.can(Permission.MESSAGES_MANAGE):
        listed = await outbox.list_test_outbox(
            session, visit.caller("test"), secret=runtime.secret, size=outbox.MAX_PAGE_SIZE
        )
        codes = {m.id: m.body for m in listed.items}
    return page(
        request,
        "messages.html",
        visit.context(
            messages=rows, codes=codes, status=status, statuses=outbox.STATUSES, done=done
        ),
    )


@router.post("/messages/{message_id}/retry")
async def retry_message(
    message_id: str,
    request: Request,
    visit: VisitDep,
    form: FormDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    visit.require(Permission.MESSAGES_MANAGE)
    row = await session.get(OutboxMessage, message_id[:36])
    if row is None or row.tenant_id != visit.tenant_id:
        raise MessageNotFound()
    await outbox.retry_message(session, runtime.clock, message_id)
    visit.record(
        session,
        runtime.clock,
        OperatorAction.MESSAGE_RETRIED,
        target=row.id,
    )
    return redirect(f"{PREFIX}/messages", flash="Message queued again.")
