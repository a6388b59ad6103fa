"""The console provider: writes messages to the log instead of sending them (development)."""

from __future__ import annotations

import logging
import uuid

from crm.messaging.providers.base import OutgoingMessage, ProviderConfig

logger = logging.getLogger("crm.messaging.console")


class ConsoleConfig(ProviderConfig):
    """No settings; the model exists so the registry treats console like the rest."""


class ConsoleProvider:
    """Logs each message in full: the only place a body (and so a code) may reach the log."""

    config_model = ConsoleConfig

    def __init__(self, config: ConsoleConfig | None = None) -> None:
        self.config = config or ConsoleConfig()

    async def send(self, message: OutgoingMessage) -> str | None:
        provider_id = f"console-{uuid.uuid4()}"
        logger.info(
            "%s to %s (message %s, tenant %s)%s\n%s",
            message.channel,
            message.recipient,
            message.id,
            message.tenant_id,
            f" subject: {message.subject}" if message.subject else "",
            message.body_text,
        )
        return provider_id
