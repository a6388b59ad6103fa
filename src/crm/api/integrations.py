"""Back-Office integrations: the tenant's SMS and email providers (API.md section 5)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from crm.api.deps import RuntimeDep, SecretKey, SessionDep
from crm.api.responses import error_responses
from crm.clock import epoch
from crm.messaging import integrations as service
from crm.messaging.integrations import IntegrationView

router = APIRouter(tags=["Integrations"])

ChannelPath = Path(description="`sms` or `email`.", examples=["sms"])


class IntegrationUpdate(BaseModel):
    provider: str = Field(
        description="SMS: `webhook`, `twilio` (`console` in development). "
        "Email: `smtp` (`console` in development).",
        examples=["webhook"],
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The provider's settings. A secret left out, or sent back masked as GET "
        "shows it, keeps its stored value, unless a destination setting (a URL, host, port, "
        "account or TLS choice) changes: then the secrets must be sent again in full "
        "(400 `PROVIDER_SECRETS_REQUIRED`). In production URLs must be https "
        "(400 `PROVIDER_URL_NOT_HTTPS`).",
        examples=[{"url": "https://sms.example.com/hook", "signing_secret": "0123456789abcdef"}],
    )


class IntegrationRead(BaseModel):
    channel: str = Field(examples=["SMS"])
    provider: str = Field(examples=["webhook"])
    source: str = Field(
        description="`tenant`: set through this API; `deployment`: the server's default.",
        examples=["tenant"],
    )
    config: dict[str, Any] | None = Field(
        description="The settings with secrets masked; null for the deployment default."
    )
    updated_at: int | None = Field(description="Epoch seconds.")


def _read(view: IntegrationView) -> IntegrationRead:
    return IntegrationRead(
        channel=view.channel,
        provider=view.provider,
        source=view.source,
        config=view.config,
        updated_at=epoch(view.updated_at),
    )


@router.get(
    "/integrations/{channel}",
    summary="The tenant's SMS or email provider (live secret key)",
    description="Secrets are masked (`****9f3c`), and so are URLs that may carry one "
    "(userinfo, a query string): they show as `****`.",
    response_model=IntegrationRead,
    responses=error_responses(401, 403, 404),
)
async def get_integration(
    caller: SecretKey, runtime: RuntimeDep, session: SessionDep, channel: str = ChannelPath
) -> IntegrationRead:
    view = await service.get_integration_for(
        session, runtime.settings, runtime.secret, caller, channel
    )
    return _read(view)


@router.put(
    "/integrations/{channel}",
    summary="Choose the tenant's SMS or email provider (live secret key)",
    description="Stored encrypted; never returned in full. Messages of both modes use it "
    "(test-mode messages never leave the outbox).",
    response_model=IntegrationRead,
    responses=error_responses(400, 401, 403, 404),
)
async def put_integration(
    body: IntegrationUpdate,
    caller: SecretKey,
    runtime: RuntimeDep,
    session: SessionDep,
    channel: str = ChannelPath,
) -> IntegrationRead:
    view = await service.put_integration(
        session,
        runtime.settings,
        runtime.secret,
        runtime.clock,
        caller,
        channel,
        body.provider,
        body.config,
    )
    return _read(view)


@router.delete(
    "/integrations/{channel}",
    summary="Go back to the deployment's default provider (live secret key)",
    response_model=IntegrationRead,
    responses=error_responses(401, 403, 404),
)
async def delete_integration(
    caller: SecretKey, runtime: RuntimeDep, session: SessionDep, channel: str = ChannelPath
) -> IntegrationRead:
    view = await service.delete_integration(session, runtime.settings, caller, channel)
    return _read(view)
