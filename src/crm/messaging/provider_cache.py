"""The worker's providers, built from the deployment's or the tenant's settings and cached per
tenant and channel; HTTP ones share the worker's clients."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import httpx

from crm.messaging.integrations import decrypt_config, deployment_provider, require_https
from crm.messaging.providers import (
    EmailProvider,
    PermanentDeliveryError,
    SmsProvider,
    TransientDeliveryError,
    build_email_provider,
    build_sms_provider,
)
from crm.settings import Settings

if TYPE_CHECKING:
    from crm.messaging.delivery import ClaimedMessage

log = logging.getLogger("crm.messaging.delivery")

_PROVIDER_CACHE_SIZE = 1000


class Providers:
    """Builds and caches providers per tenant and channel; HTTP ones share the worker's client."""

    def __init__(
        self,
        settings: Settings,
        secret: str,
        client: httpx.AsyncClient,
        guarded_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.secret = secret
        # The deployment's providers are the operator's own infrastructure and may be internal;
        # tenants' providers go through the guarded client (netguard) unless private addresses
        # are allowed.
        self.client = client
        self.guarded_client = guarded_client or client
        self._cache: OrderedDict[tuple[Any, ...], tuple[str, SmsProvider | EmailProvider]] = (
            OrderedDict()
        )

    def _build(
        self, channel: str, name: str, config: dict[str, Any], *, guarded: bool
    ) -> SmsProvider | EmailProvider:
        if channel == "SMS":
            client = self.guarded_client if guarded else self.client
            return build_sms_provider(name, config, client=client)
        return build_email_provider(name, config, guarded=guarded)

    async def get(self, message: ClaimedMessage) -> tuple[str, SmsProvider | EmailProvider]:
        """The provider for this message, or a TransientDeliveryError when its settings are
        unusable (left to retry so the tenant or operator can fix them within the retry window)."""
        settings = self.settings
        if message.integration is None:
            key: tuple[Any, ...] = ("deployment", message.channel)
        else:
            name, _, updated_at = message.integration
            key = ("tenant", message.tenant_id, message.channel, name, updated_at)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
        else:
            try:
                if message.integration is None:
                    name, config = deployment_provider(settings, message.channel)
                else:
                    name, encrypted, _ = message.integration
                    config = decrypt_config(self.secret, encrypted)
                require_https(settings, name, config)
                # No address check here: a check when the provider is built would hold for as long as it
                # is cached. Guarded providers check every connection's address (netguard).
                guarded = (
                    message.integration is not None and not settings.private_provider_urls_allowed
                )
                provider = self._build(message.channel, name, config, guarded=guarded)
            except PermanentDeliveryError:
                raise
            except Exception as exc:
                source = "deployment" if message.integration is None else "tenant's"
                log.error(
                    "the %s %s provider settings are not usable",
                    source,
                    message.channel,
                    extra={"tenant_id": message.tenant_id, "error": type(exc).__name__},
                )
                raise TransientDeliveryError(
                    f"the {source} {message.channel} provider settings are not usable"
                ) from None
            cached = (name, provider)
            # The deployment default is stable for the process; tenant entries are keyed by
            # their updated_at, so a PUT makes a new entry and the old one ages out.
            self._cache[key] = cached
            while len(self._cache) > _PROVIDER_CACHE_SIZE:
                self._cache.popitem(last=False)
        return cached
