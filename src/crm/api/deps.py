"""FastAPI dependencies: the runtime, a unit-of-work session, and the caller from its api_key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from crm import media, unit_of_work
from crm.errors import ApiKeyInvalid, ApiKeyMissing, WrongKeyKind
from crm.messaging.outbox import OUTBOX_DIRTY
from crm.runtime import Runtime
from crm.tenants.schemas import CallerKey


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread per request.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One commit point per request: committed after the handler returns, rolled back on error."""
    async with runtime.sessions() as session:
        try:
            yield session
            await unit_of_work.commit(session)
        except BaseException:
            await session.rollback()
            await _settle_media(runtime, session, committed=False)
            raise
    await _settle_media(runtime, session, committed=True)
    if session.info.get(OUTBOX_DIRTY):
        runtime.outbox_wakeup.set()


async def _settle_media(runtime: Runtime, session: AsyncSession, *, committed: bool) -> None:
    """Remove the picture files this unit of work replaced (committed) or wrote in vain."""
    if session.info.get(media.WRITTEN) or session.info.get(media.REMOVED):
        await media.settle(session.info, media.media_store(runtime.settings), committed=committed)


# scope="function": the commit happens before the response is sent, so a client never sees
# success for a transaction that then failed to commit (FastAPI's default ends it afterwards).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def resolve_api_key(
    request: Request, runtime: Runtime, api_key: str | None
) -> CallerKey | None:
    if not api_key:
        return None
    # Bound the work an attacker can make us do before the lookup.
    if len(api_key) > 200:
        raise ApiKeyInvalid()
    caller = await runtime.keys.resolve(api_key.strip())
    if caller is None:
        raise ApiKeyInvalid()
    request.state.tenant_id = caller.tenant_id
    # Whose allowed origins the answer is judged by (CORS, in the middleware).
    request.state.application_id = caller.application_id
    return caller


async def public_key(
    request: Request,
    runtime: RuntimeDep,
    api_key: Annotated[
        str | None,
        Header(
            alias="api_key",
            convert_underscores=False,
            description="A public key (`pk_test_...`, `pk_live_...`).",
        ),
    ] = None,
) -> CallerKey:
    caller = await resolve_api_key(request, runtime, api_key)
    if caller is None:
        raise ApiKeyMissing()
    if caller.kind != "public":
        raise WrongKeyKind(
            "A secret key may not be used on the Self-Service API; use a public key."
        )
    return caller


async def secret_key(
    request: Request,
    runtime: RuntimeDep,
    api_key: Annotated[
        str | None,
        Header(
            alias="api_key",
            convert_underscores=False,
            description="A secret key (`sk_test_...`, `sk_live_...`).",
        ),
    ] = None,
) -> CallerKey:
    caller = await resolve_api_key(request, runtime, api_key)
    if caller is None:
        raise ApiKeyMissing()
    if caller.kind != "secret":
        raise WrongKeyKind("A public key may not be used on the Back-Office API; use a secret key.")
    return caller


PublicKey = Annotated[CallerKey, Depends(public_key)]
SecretKey = Annotated[CallerKey, Depends(secret_key)]
