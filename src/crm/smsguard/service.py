"""The checks every SMS code passes before it is queued, and the count of codes proven.

SMS pumping: bots register premium-rate numbers so that the business pays for the texts. Four
defences, from the cheapest to check:

1. the application's allowed countries (`sms_countries`): a number elsewhere is refused (400);
2. the conversion watch (live keys): when few of the codes sent to a country in the current and
   previous hour were entered, further SMS to it are refused (429) until the rate recovers;
3. the number-range cap (live keys): codes per hour to numbers of one country that differ only
   in their last digits, the shape of a run through a premium range (429);
4. the tenant's daily budget per mode (429 until midnight UTC), with a warning at 80%.

The counters are rows in the database, so they hold across every server process, and they are
counted in the transaction that queues the message: the count and the message commit or roll
back together, so a rollback can undo a count only by also undoing its message, and a refused
request leaves no count behind. Test keys send nothing, so the range cap and the conversion
watch, which guard money, apply to live keys only; the countries and the budget apply to both.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm import driver
from crm.clock import Clock
from crm.identifiers.core import normalize_phone
from crm.metrics import REGISTRY
from crm.ratelimits import service as counters
from crm.ratelimits.models import RateCounter
from crm.smsguard.errors import (
    CountryNotAllowed,
    SmsCountryThrottled,
    SmsDailyLimitReached,
    SmsRangeThrottled,
)
from crm.smsguard.models import SmsDailyCount
from crm.tenants.models import Tenant
from crm.tenants.schemas import tenant_settings_from

log = logging.getLogger("crm.smsguard")

_HOUR = 3600
_DAY = 86400
# The share of the daily budget at which operators are warned, while there is time to act.
WARNING_SHARE = 0.8


class GuardMode(StrEnum):
    ENFORCE = "enforce"
    RECORD = "record"  # count and log what would be refused, refuse nothing (for tuning)
    OFF = "off"


class Reason(StrEnum):
    """The `reason` label of crm_sms_blocked_total: which defence refused the message."""

    COUNTRY_NOT_ALLOWED = "country_not_allowed"
    DAILY_LIMIT = "daily_limit"
    NUMBER_RANGE = "number_range"
    LOW_CONVERSION = "low_conversion"


@dataclass(frozen=True, slots=True)
class Limits:
    """The deployment's thresholds (CRM_SMS_*); a tenant may lower or raise its daily budget."""

    daily_limit: int = 5000
    range_tail_digits: int = 3
    range_limit_per_hour: int = 10
    range_mode: GuardMode = GuardMode.ENFORCE
    conversion_min_sends: int = 40
    conversion_min_rate: float = 0.2
    conversion_mode: GuardMode = GuardMode.ENFORCE

    @classmethod
    def from_settings(cls, settings: SmsSettings) -> Limits:
        return cls(
            daily_limit=settings.sms_daily_limit,
            range_tail_digits=settings.sms_range_tail_digits,
            range_limit_per_hour=settings.sms_range_limit_per_hour,
            range_mode=GuardMode(settings.sms_range_mode),
            conversion_min_sends=settings.sms_conversion_min_sends,
            conversion_min_rate=settings.sms_conversion_min_rate,
            conversion_mode=GuardMode(settings.sms_conversion_mode),
        )


class SmsSettings(Protocol):
    """The deployment settings the defences read (crm.settings.Settings has them all)."""

    @property
    def sms_daily_limit(self) -> int: ...
    @property
    def sms_range_tail_digits(self) -> int: ...
    @property
    def sms_range_limit_per_hour(self) -> int: ...
    @property
    def sms_range_mode(self) -> str: ...
    @property
    def sms_conversion_min_sends(self) -> int: ...
    @property
    def sms_conversion_min_rate(self) -> float: ...
    @property
    def sms_conversion_mode(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Destination:
    """Where an SMS goes, as the defences see it."""

    country: str  # ISO 3166-1 alpha-3
    number_range: str  # "+35799123": the number without its last digits


def destination(e164: str, tail_digits: int = 3) -> Destination:
    """The country and number range of an E.164 number (as stored on a phone identity)."""
    number = normalize_phone(e164, None)
    # At least one national digit stays, so a short number does not stand for its whole country.
    keep = max(1, len(number.national) - tail_digits)
    calling_code = number.e164[: len(number.e164) - len(number.national)]
    return Destination(number.country_code, calling_code + number.national[:keep])


def check_country(countries: tuple[str, ...] | None, country: str | None) -> None:
    """Refuse an SMS to `country` unless the application allows it (None: every country)."""
    if countries is None or country is None or country in countries:
        return
    _refused(Reason.COUNTRY_NOT_ALLOWED, country=country)
    raise CountryNotAllowed(
        f"This application sends SMS only to numbers of {', '.join(countries)}."
    )


async def admit(
    session: AsyncSession,
    clock: Clock,
    limits: Limits,
    *,
    tenant_id: str,
    mode: str,
    e164: str,
    countries: tuple[str, ...] | None,
) -> None:
    """Pass one SMS code to `e164` through every defence and count it, or raise.

    Call it where the code is about to be queued, in the same transaction.
    """
    where = destination(e164, limits.range_tail_digits)
    check_country(countries, where.country)
    now = clock.timestamp()
    hour = _window(now, _HOUR)
    live = mode == "live"
    if live and limits.conversion_mode is not GuardMode.OFF:
        await _watch_conversion(session, limits, tenant_id, where, now)
    if live and limits.range_mode is not GuardMode.OFF:
        bucket = f"sms-range:{tenant_id}:{where.number_range}"
        count = await counters.add(session, bucket, hour)
        if count > limits.range_limit_per_hour:
            _block(
                limits.range_mode,
                Reason.NUMBER_RANGE,
                SmsRangeThrottled(retry_after=_until(now, _HOUR)),
                country=where.country,
                number_range=where.number_range,
                count=count,
            )
    await _spend_budget(session, limits, tenant_id, mode, now)
    if live:
        await counters.add(session, f"sms-sent:{tenant_id}:{where.country}", hour)


async def record_proof(
    session: AsyncSession, *, tenant_id: str, mode: str, e164: str, sent_at: datetime
) -> None:
    """Count a code entered correctly, in the hour it was sent (the watch compares the two)."""
    if mode != "live":
        return
    where = destination(e164)
    window = _window(sent_at.timestamp(), _HOUR)
    await counters.add(session, f"sms-proven:{tenant_id}:{where.country}", window)


async def sent_today(session: AsyncSession, clock: Clock, tenant_id: str) -> dict[str, int]:
    """SMS counted against the tenant's budget today, per mode."""
    day = _window(clock.timestamp(), _DAY)
    rows = await session.execute(
        select(SmsDailyCount.mode, SmsDailyCount.count).where(
            SmsDailyCount.tenant_id == tenant_id, SmsDailyCount.day == day
        )
    )
    return {mode: int(count) for mode, count in rows}


async def _watch_conversion(
    session: AsyncSession, limits: Limits, tenant_id: str, where: Destination, now: float
) -> None:
    # Two hourly windows: the previous hour's verdict is not forgotten at the turn of the hour,
    # and codes sent minutes ago (not yet entered) weigh less against the rate.
    hour = _window(now, _HOUR)
    sent_bucket = f"sms-sent:{tenant_id}:{where.country}"
    proven_bucket = f"sms-proven:{tenant_id}:{where.country}"
    rows = await session.execute(
        select(RateCounter.bucket, func.sum(RateCounter.count))
        .where(
            RateCounter.bucket.in_((sent_bucket, proven_bucket)),
            RateCounter.window_start.in_((_window(now - _HOUR, _HOUR), hour)),
        )
        .group_by(RateCounter.bucket)
    )
    totals = {bucket: int(total or 0) for bucket, total in rows}
    sent, proven = totals.get(sent_bucket, 0), totals.get(proven_bucket, 0)
    if sent < limits.conversion_min_sends or proven >= limits.conversion_min_rate * sent:
        return
    _block(
        limits.conversion_mode,
        Reason.LOW_CONVERSION,
        SmsCountryThrottled(retry_after=_until(now, _HOUR)),
        country=where.country,
        sent=sent,
        proven=proven,
    )


async def _spend_budget(
    session: AsyncSession, limits: Limits, tenant_id: str, mode: str, now: float
) -> None:
    count, stored = await _count_today(session, tenant_id, mode, _window(now, _DAY))
    own = tenant_settings_from(stored)
    limit = limits.daily_limit if own.sms_daily_limit is None else own.sms_daily_limit
    if count > limit:
        _refused(Reason.DAILY_LIMIT, tenant_id=tenant_id, mode=mode, limit=limit)
        raise SmsDailyLimitReached(retry_after=_until(now, _DAY))
    warn_at = math.ceil(limit * WARNING_SHARE)
    if count >= warn_at:
        REGISTRY.sms_daily_used.set(count / limit, tenant_id, mode)
    if count == warn_at:
        # Increments are serialised on the row, so exactly one send sees this count.
        log.warning(
            "SMS daily budget 80% used",
            extra={"tenant_id": tenant_id, "mode": mode, "count": count, "limit": limit},
        )


# Built once (see crm.driver on why the hot statements are).
_INCREMENT_TODAY = driver.Statement(
    update(driver.table_of(SmsDailyCount))
    .where(
        # An UPDATE's parameters may not be named after its table's columns.
        SmsDailyCount.tenant_id == bindparam("tenant"),
        SmsDailyCount.mode == bindparam("key_mode"),
        SmsDailyCount.day == bindparam("today"),
    )
    .values(count=SmsDailyCount.count + 1)
    .returning(
        driver.table_of(SmsDailyCount).c.count,
        select(Tenant.settings)
        .where(Tenant.id == bindparam("tenant"))
        .scalar_subquery()
        .label("tenant_settings"),
    )
)


async def _count_today(
    session: AsyncSession, tenant_id: str, mode: str, day: datetime
) -> tuple[int, Mapping[str, Any] | None]:
    """Add one to the day's count; return it with the tenant's stored settings (its own daily
    limit may be there). Same upsert as ratelimits.add, other table; the settings ride along in
    the RETURNING so a sign-up pays one statement for both."""
    values = {"tenant": tenant_id, "key_mode": mode, "today": day}
    row = await driver.fetchrow(session, _INCREMENT_TODAY, values)
    if row is None:
        try:
            async with session.begin_nested():
                session.add(SmsDailyCount(tenant_id=tenant_id, mode=mode, day=day, count=1))
            return 1, await session.scalar(select(Tenant.settings).where(Tenant.id == tenant_id))
        except IntegrityError:
            row = await driver.fetchrow(session, _INCREMENT_TODAY, values)
            assert row is not None  # the row that collided is there
    return int(row["count"]), row["tenant_settings"]


def _block(mode: GuardMode, reason: Reason, error: Exception, **context: str | int | float) -> None:
    if mode is GuardMode.RECORD:
        REGISTRY.sms_would_block.inc(reason.value)
        log.warning("SMS would be refused (record-only)", extra={"reason": reason.value, **context})
        return
    _refused(reason, **context)
    raise error


def _refused(reason: Reason, **context: str | int | float) -> None:
    # Never the whole number in the log: the country and the range are enough to act on.
    REGISTRY.sms_blocked.inc(reason.value)
    log.warning("SMS refused", extra={"reason": reason.value, **context})


def _window(timestamp: float, seconds: int) -> datetime:
    return datetime.fromtimestamp(int(timestamp // seconds) * seconds, UTC)


def _until(now: float, seconds: int) -> int:
    """Seconds until the fixed window of `seconds` that holds `now` ends (midnight UTC for days)."""
    return int((now // seconds + 1) * seconds - now) + 1
