"""The console's operators page (owners only): add an operator, disable one, reset a password."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from crm.api.deps import RuntimeDep, SessionDep
from crm.console.forms import problem
from crm.console.web import PREFIX, FormDep, Visit, VisitDep, page, redirect
from crm.errors import AppError
from crm.operators import service as operators
from crm.operators.roles import ROLES, Permission

router = APIRouter(prefix=PREFIX, include_in_schema=False)


async def _team_page(
    request: Request,
    visit: Visit,
    session: AsyncSession,
    *,
    error: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
    done: str = "",
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "operators.html",
        visit.context(
            operators=await operators.list_operators(session, visit.tenant_id),
            roles=ROLES,
            error=error,
            form=form or {},
            done=done,
        ),
        status_code=status_code,
    )


@router.get("/operators")
async def show_operators(
    request: Request, visit: VisitDep, session: SessionDep, done: str = ""
) -> Response:
    visit.require(Permission.OPERATORS)
    return await _team_page(request, visit, session, done=done)


@router.post("/operators")
async def create_operator(
    request: Request, visit: VisitDep, form: FormDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    visit.require(Permission.OPERATORS)
    try:
        await operators.create_operator(
            session,
            runtime.clock,
            tenant_id=visit.tenant_id,
            email=form.get("email", ""),
            role=form.get("role", ""),
            password=form.get("password", ""),
            actor=visit.acting,
        )
    except AppError as exc:
        await session.rollback()
        failed = problem(exc)
        if exc.code.startswith("PASSWORD"):
            failed["fields"].setdefault("password", exc.message)
        kept = {k: v for k, v in form.items() if k != "password"}
        return await _team_page(
            request, visit, session, error=failed, form=kept, status_code=exc.status_code
        )
    return redirect(f"{PREFIX}/operators", flash="Operator added.")


@router.post("/operators/{operator_id}/disable")
async def disable_operator(
    operator_id: str, visit: VisitDep, form: FormDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    visit.require(Permission.OPERATORS)
    found = await operators.get_operator(session, operator_id, visit.tenant_id)
    await operators.disable_operator(session, runtime.clock, found, actor=visit.acting)
    return redirect(f"{PREFIX}/operators", flash=f"{found.email} disabled.")


@router.post("/operators/{operator_id}/password")
async def reset_password(
    operator_id: str,
    request: Request,
    visit: VisitDep,
    form: FormDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    visit.require(Permission.OPERATORS)
    found = await operators.get_operator(session, operator_id, visit.tenant_id)
    try:
        await operators.reset_password(
            session, runtime.clock, found, password=form.get("password", ""), actor=visit.acting
        )
    except AppError as exc:
        await session.rollback()
        failed = problem(exc)
        failed["operator_id"] = operator_id
        return await _team_page(request, visit, session, error=failed, status_code=exc.status_code)
    return redirect(f"{PREFIX}/operators", flash=f"New password set for {found.email}.")
