"""The console's activity page (owners and admins): who signed in, who failed to, and who changed
operators, providers, applications and keys, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from crm.api.deps import SessionDep
from crm.console.web import PREFIX, VisitDep, page
from crm.operators import activity
from crm.operators.roles import Permission
from crm.vocabulary import OperatorAction

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE = 50
ACTIONS = [a.value for a in OperatorAction]


@router.get("/activity")
async def show_activity(
    request: Request, visit: VisitDep, session: SessionDep, action: str = "", before: str = ""
) -> Response:
    visit.require(Permission.ACTIVITY)
    # An unknown filter shows everything rather than failing: it came from an edited URL.
    chosen = OperatorAction(action) if action in ACTIONS else None
    rows = await activity.newest(
        session,
        tenant_id=visit.tenant_id,
        before=before[:36] or None,
        size=PAGE_SIZE + 1,
        action=chosen,
    )
    return page(
        request,
        "activity.html",
        visit.context(
            entries=rows[:PAGE_SIZE],
            older=rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None,
            action=chosen.value if chosen else "",
            actions=ACTIONS,
        ),
    )
