"""The checks `crm serve` and `crm worker` make before they start: each failure is one line."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from crm.clock import Clock
from crm.deployment.providers import deployment_problems
from crm.deployment.secret import SecretState, check_secret
from crm.settings import Settings


def settings_problem(settings: Settings) -> str | None:
    """The deployment providers' missing or wrong settings in one line, or None."""
    problems = deployment_problems(settings)
    return "; ".join(str(p) for p in problems) if problems else None


def secret_source(settings: Settings) -> str:
    """Where the secret comes from, for messages (never the secret itself)."""
    if settings.secret_key is not None:
        return "CRM_SECRET_KEY"
    return f"CRM_SECRET_KEY (unset: read from {settings.secret_key_path()})"


async def secret_problem(engine: AsyncEngine, settings: Settings, secret: str) -> str | None:
    """None when `secret` reads the database (recording the check value on first use)."""
    state = await check_secret(engine, secret, Clock(), record=True)
    if state is SecretState.MISMATCH:
        return (
            f"{secret_source(settings)} cannot read this database: it was written with another "
            "secret; set CRM_SECRET_KEY to the one it was written with"
        )
    return None
