"""The delivery worker: one loop per process that claims due messages and sends them concurrently."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import httpx

# Every table must be mapped before a flush: outbox rows reference contacts.
import crm.models  # noqa: F401
from crm.errors import AppError
from crm.events import delivery as webhook_delivery
from crm.events import fanout
from crm.messaging import delivery
from crm.messaging.delivery import ClaimedMessage
from crm.messaging.integrations import deployment_provider, require_https
from crm.messaging.provider_cache import Providers
from crm.messaging.providers import validate_config
from crm.messaging.providers.netguard import guarded_client
from crm.runtime import Runtime

log = logging.getLogger("crm.messaging.worker")

# A database outage is retried at growing intervals up to this, so a long outage costs little.
_MAX_ERROR_PAUSE = 30.0
# How long shutdown waits for sends in flight before cancelling and releasing them.
_MAX_SHUTDOWN_GRACE = 10.0
_RECORD_TRIES = 5


class DeliveryWorker:
    """Runs until `stop()`; never dies of a database outage or a provider error.

    Wakes at once when `runtime.outbox_wakeup` is set (a commit in this process queued a
    message) and otherwise every `outbox_poll_seconds` (messages queued by other processes,
    retries falling due, abandoned leases). At most `outbox_concurrency` sends run at once.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        rng: random.Random | None = None,
        shutdown_grace: float | None = None,
    ) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.concurrency = settings.outbox_concurrency
        self.batch_size = settings.outbox_batch_size
        self.poll = settings.outbox_poll_seconds
        self.send_timeout = settings.outbox_lease_seconds / 2
        self.shutdown_grace = (
            min(_MAX_SHUTDOWN_GRACE, self.send_timeout)
            if shutdown_grace is None
            else shutdown_grace
        )
        self._rng = rng or random.Random()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._providers: Providers | None = None
        self.started = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency * 2)
        async with (
            httpx.AsyncClient(follow_redirects=False, limits=limits) as client,
            guarded_client(limits) as guarded,
        ):
            self._providers = Providers(self.runtime.settings, self.runtime.secret, client, guarded)
            log.info(
                "delivery worker started",
                extra={"concurrency": self.concurrency, "poll_seconds": self.poll},
            )
            self._check_deployment_providers()
            self.started.set()
            try:
                await self._loop()
            finally:
                await self._drain()
                log.info("delivery worker stopped")

    def _check_deployment_providers(self) -> None:
        """Say at startup, not per message, when the environment's default provider is unusable."""
        for channel in ("SMS", "EMAIL"):
            name, config = deployment_provider(self.runtime.settings, channel)
            try:
                validate_config(channel, name, config)
                require_https(self.runtime.settings, name, config)
            except AppError as exc:
                # Field names and reasons only: validate_config never echoes the values.
                log.error(
                    "the deployment's %s provider (%s) is misconfigured; messages without a "
                    "tenant provider will be retried and then fail",
                    channel,
                    name,
                    extra={"details": exc.details},
                )

    async def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                full = await self._turn()
            except Exception as exc:
                # A database outage (or a bug) must not end delivery: back off and try again.
                failures += 1
                pause = min(_MAX_ERROR_PAUSE, self.poll * 2 ** min(failures, 10))
                log.warning(
                    "could not claim messages (database unavailable?); retrying",
                    extra={"error": type(exc).__name__, "retry_in_seconds": round(pause, 2)},
                )
                await self._wait(pause, wake_on_event=False)
                continue
            failures = 0
            if not full:
                await self._wait(self.poll, wake_on_event=True)

    async def _turn(self) -> bool:
        """Claim what fits in the free sending slots; True when more may be due right now."""
        # Cleared before claiming: a commit that lands while this claim runs sets it again, so
        # its message is picked up on the next turn instead of waiting for a poll.
        self.runtime.outbox_wakeup.clear()
        fanned = await fanout.fan_out(
            self.runtime.sessions, self.runtime.clock, limit=self.batch_size
        )
        wanted = min(self.concurrency - len(self._tasks), self.batch_size)
        if wanted <= 0:
            return fanned == self.batch_size
        batch = await delivery.claim(self.runtime, wanted)
        for message in batch:
            self._spawn(message)
        more = len(batch) == wanted and len(self._tasks) < self.concurrency
        return more or fanned == self.batch_size

    async def _wait(self, seconds: float, *, wake_on_event: bool) -> None:
        """Sleep until stop, a timeout, and (when asked) a wakeup or a free sending slot."""
        waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(self._stop.wait())}
        if wake_on_event:
            waiters.add(asyncio.ensure_future(self.runtime.outbox_wakeup.wait()))
        watched: set[asyncio.Future[object]] = set(waiters)
        if wake_on_event and len(self._tasks) >= self.concurrency:
            watched |= set(self._tasks)  # type: ignore[arg-type]
        try:
            await asyncio.wait(watched, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _spawn(self, message: ClaimedMessage) -> None:
        task = asyncio.create_task(self._deliver(message), name=f"deliver-{message.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, message: ClaimedMessage) -> None:
        assert self._providers is not None
        if message.channel == fanout.WEBHOOK_CHANNEL:
            await self._deliver_event(message)
            return
        try:
            result = await delivery.send(self._providers, message, self.send_timeout)
        except asyncio.CancelledError:
            # Shutdown cut the send short: the provider may or may not have it. Give the claim
            # back so another worker sends it now rather than after the lease (a code that
            # must not go twice becomes possibly_sent instead; see delivery.release).
            await self._persist(lambda: delivery.release(self.runtime, message), message)
            raise
        await self._persist(
            lambda: delivery.record(self.runtime, message, result, self._rng), message
        )

    async def _deliver_event(self, message: ClaimedMessage) -> None:
        """One webhook POST of an event (events/delivery.py); the tenant's URL goes through the
        guarded client (netguard) unless private addresses are allowed."""
        assert self._providers is not None
        runtime = self.runtime
        try:
            target = await webhook_delivery.prepare(
                runtime.sessions,
                runtime.secret,
                runtime.clock,
                message_id=message.id,
                endpoint_id=message.recipient,
                event_id=message.subject or "",
            )
        except Exception as exc:
            # A database outage, or a secret that no longer opens: the lease brings it back.
            log.error(
                "could not prepare a webhook delivery; it is retried after its lease",
                extra={"message_id": message.id, "error": type(exc).__name__},
            )
            return
        if target is None:
            await self._persist(
                lambda: webhook_delivery.cancel(runtime.sessions, message.id, message.attempt),
                message,
            )
            return
        settings = runtime.settings
        client = (
            self._providers.client
            if settings.private_provider_urls_allowed
            else self._providers.guarded_client
        )
        limit = min(settings.webhook_timeout_seconds, self.send_timeout)
        try:
            attempt = await webhook_delivery.post(client, target, limit)
        except asyncio.CancelledError:
            await self._persist(lambda: delivery.release(runtime, message), message)
            raise
        await self._persist(
            lambda: webhook_delivery.record(
                runtime.sessions,
                settings,
                runtime.clock,
                message_id=message.id,
                attempt_number=message.attempt,
                target=target,
                attempt=attempt,
                rng=self._rng,
                server_secret=runtime.secret,
            ),
            message,
        )

    async def _persist(
        self, write: Callable[[], Awaitable[object]], message: ClaimedMessage
    ) -> None:
        """Retry a short database write a few times; after that the lease recovers the message
        (and it is sent again: at-least-once)."""
        for attempt in range(1, _RECORD_TRIES + 1):
            try:
                await write()
                return
            except Exception as exc:
                if attempt == _RECORD_TRIES:
                    log.error(
                        "could not record a message's outcome; it is retried after its lease",
                        extra={"message_id": message.id, "error": type(exc).__name__},
                    )
                    return
                await asyncio.sleep(0.1 * 2**attempt)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        log.info("waiting for sends in flight", extra={"in_flight": len(self._tasks)})
        _, pending = await asyncio.wait(set(self._tasks), timeout=self.shutdown_grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
