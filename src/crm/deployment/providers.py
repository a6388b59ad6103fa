"""Whether the deployment's own SMS and email providers have every setting they need."""

from __future__ import annotations

import re
from dataclasses import dataclass

from crm.errors import AppError
from crm.messaging.integrations import deployment_provider
from crm.messaging.providers import validate_config
from crm.settings import Settings

# Which environment variable fills each field of a deployment provider's settings, so a problem
# is reported by the name the operator sets (see messaging.integrations.deployment_provider).
_ENV: dict[tuple[str, str], dict[str, str]] = {
    ("SMS", "webhook"): {
        "url": "CRM_SMS_WEBHOOK_URL",
        "signing_secret": "CRM_SMS_WEBHOOK_SECRET",
    },
    ("SMS", "twilio"): {
        "account_sid": "CRM_TWILIO_ACCOUNT_SID",
        "auth_token": "CRM_TWILIO_AUTH_TOKEN",
        "from_number": "CRM_TWILIO_FROM_NUMBER",
        "messaging_service_sid": "CRM_TWILIO_MESSAGING_SERVICE_SID",
        "base_url": "CRM_TWILIO_BASE_URL",
    },
    ("EMAIL", "smtp"): {
        "host": "CRM_SMTP_HOST",
        "port": "CRM_SMTP_PORT",
        "from_address": "CRM_SMTP_FROM",
        "username": "CRM_SMTP_USERNAME",
        "password": "CRM_SMTP_PASSWORD",
        "starttls": "CRM_SMTP_STARTTLS",
    },
}
_SELECTOR = {"SMS": "CRM_SMS_PROVIDER", "EMAIL": "CRM_EMAIL_PROVIDER"}


@dataclass(frozen=True, slots=True)
class SettingProblem:
    """One setting to fix, said in one line that names it (never its value)."""

    setting: str
    message: str

    def __str__(self) -> str:
        return self.message


def provider_problems(settings: Settings, channel: str) -> list[SettingProblem]:
    """What is missing or wrong in the deployment provider settings of `channel` (SMS, EMAIL)."""
    name, config = deployment_provider(settings, channel)
    selector = f"{_SELECTOR[channel]}={name}"
    try:
        validate_config(channel, name, config)
    except AppError as exc:
        env = _ENV.get((channel, name), {})
        problems = []
        for detail in exc.details:
            field = str(detail.get("field", ""))
            message = _with_env_names(str(detail.get("message", "")), env)
            setting = env.get(field)
            if setting is None:
                # A rule over several fields (e.g. a sender is one of two settings).
                problems.append(SettingProblem(_SELECTOR[channel], f"{selector}: {message}"))
            elif field not in config:
                problems.append(SettingProblem(setting, f"{setting} must be set when {selector}"))
            else:
                problems.append(SettingProblem(setting, f"{setting} is not valid: {message}"))
        return problems or [SettingProblem(_SELECTOR[channel], f"{selector}: {exc.message}")]
    return []


def deployment_problems(settings: Settings) -> list[SettingProblem]:
    """Every problem of the deployment providers' settings, SMS first."""
    return provider_problems(settings, "SMS") + provider_problems(settings, "EMAIL")


def _with_env_names(message: str, env: dict[str, str]) -> str:
    """A validation message with the provider's field names replaced by their variables."""
    if not env:
        return message
    pattern = re.compile(r"\b(" + "|".join(re.escape(f) for f in env) + r")\b")
    return pattern.sub(lambda m: env[m.group(1)], message)
