"""The console's overview: the last 14 days of sign-ups, sign-ins, codes and delivery failures,
drawn on the server as SVG bar charts (no script, no chart library)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.api.deps import RuntimeDep, SessionDep
from crm.console.web import PREFIX, Visit, VisitDep, page
from crm.contacts.models import Contact
from crm.identities.models import OtpChallenge, Session
from crm.messaging.models import OutboxMessage
from crm.operators.roles import Permission

router = APIRouter(prefix=PREFIX, include_in_schema=False)
DAYS = 14
# Counting is done here over the window's rows; the bound keeps one page view cheap however
# busy the tenant (the charts then say so).
MAX_ROWS = 50_000
WIDTH, HEIGHT, TOP, BOTTOM, LEFT = 560, 180, 14, 28, 34


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    css: str  # the class that colours its bars
    values: list[int]


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    days: list[date]
    series: list[Series]
    capped: bool

    def svg(self) -> dict[str, Any]:
        """Bars, axis labels and a text summary, as numbers the template writes into SVG."""
        top = max([1, *(v for s in self.series for v in s.values)])
        plot_w, plot_h = WIDTH - LEFT - 6, HEIGHT - TOP - BOTTOM
        slot = plot_w / len(self.days)
        bar_w = max(2.0, (slot - 4) / len(self.series))
        bars = []
        for day_index, day in enumerate(self.days):
            for s_index, series in enumerate(self.series):
                value = series.values[day_index]
                h = plot_h * value / top
                bars.append(
                    {
                        "x": round(LEFT + day_index * slot + 2 + s_index * bar_w, 1),
                        "y": round(TOP + plot_h - h, 1),
                        "w": round(bar_w - 1, 1),
                        "h": round(h, 1),
                        "css": series.css,
                        "label": f"{day.isoformat()} {series.label}: {value}",
                    }
                )
        ticks = [
            {"x": round(LEFT + i * slot + slot / 2, 1), "text": d.strftime("%d")}
            for i, d in enumerate(self.days)
            if i % 2 == 0
        ]
        return {
            "width": WIDTH,
            "height": HEIGHT,
            "left": LEFT,
            "top": TOP,
            "base": TOP + plot_h,
            "max": top,
            "bars": bars,
            "ticks": ticks,
            "totals": [(s.label, s.css, sum(s.values)) for s in self.series],
        }


def _days(today: date) -> list[date]:
    return [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]


def _count(stamps: list[datetime], days: list[date]) -> list[int]:
    index = {d: i for i, d in enumerate(days)}
    counts = [0] * len(days)
    for stamp in stamps:
        i = index.get(stamp.date())
        if i is not None:
            counts[i] += 1
    return counts


async def _stamps(session: AsyncSession, query: Any) -> tuple[list[Any], bool]:
    rows = list((await session.execute(query.limit(MAX_ROWS + 1))).all())
    return rows[:MAX_ROWS], len(rows) > MAX_ROWS


async def charts(session: AsyncSession, visit: Visit, now: datetime) -> list[Chart]:
    days = _days(now.date())
    since = datetime.combine(days[0], datetime.min.time(), tzinfo=now.tzinfo)
    tenant, mode = visit.tenant_id, visit.mode
    signups, cap1 = await _stamps(
        session,
        select(Contact.created_at).where(
            Contact.tenant_id == tenant, Contact.mode == mode, Contact.created_at >= since
        ),
    )
    signins, cap2 = await _stamps(
        session,
        select(Session.created_at).where(
            Session.tenant_id == tenant, Session.mode == mode, Session.created_at >= since
        ),
    )
    codes, cap3 = await _stamps(
        session,
        select(OtpChallenge.created_at, OtpChallenge.consumed_at, OtpChallenge.channel).where(
            OtpChallenge.tenant_id == tenant,
            OtpChallenge.mode == mode,
            OtpChallenge.created_at >= since,
        ),
    )
    failures, cap4 = await _stamps(
        session,
        select(OutboxMessage.created_at, OutboxMessage.channel).where(
            OutboxMessage.tenant_id == tenant,
            OutboxMessage.mode == mode,
            OutboxMessage.created_at >= since,
            OutboxMessage.status.in_(("failed", "possibly_sent")),
        ),
    )
    result = [
        Chart(
            "Sign-ups and sign-ins per day",
            days,
            [
                Series("sign-ups", "s1", _count([r[0] for r in signups], days)),
                Series("sign-ins", "s2", _count([r[0] for r in signins], days)),
            ],
            cap1 or cap2,
        )
    ]
    for channel in ("SMS", "EMAIL"):
        mine = [r for r in codes if r[2] == channel]
        result.append(
            Chart(
                f"{channel} codes sent and proven per day",
                days,
                [
                    Series("sent", "s1", _count([r[0] for r in mine], days)),
                    Series("proven", "s2", _count([r[0] for r in mine if r[1] is not None], days)),
                ],
                cap3,
            )
        )
    result.append(
        Chart(
            "Delivery failures per day",
            days,
            [
                Series(
                    f"{channel} failed",
                    css,
                    _count([r[0] for r in failures if r[1] == channel], days),
                )
                for channel, css in (("SMS", "s3"), ("EMAIL", "s4"))
            ],
            cap4,
        )
    )
    return result


@router.get("/")
async def overview(
    request: Request, visit: VisitDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    visit.require(Permission.CONTACTS_READ)
    drawn = [(c, c.svg()) for c in await charts(session, visit, runtime.clock.now())]
    return page(request, "overview.html", visit.context(charts=drawn, done=""))
