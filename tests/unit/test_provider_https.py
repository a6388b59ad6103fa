"""In production, provider and webhook URLs must be https, the deployment's own included."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from crm.errors import AppError
from crm.messaging.integrations import deployment_provider, require_https
from tests.conftest import base_settings


def test_production_refuses_an_http_deployment_webhook() -> None:
    settings = base_settings(
        env="development",
        sms_provider="webhook",
        sms_webhook_url="http://gateway.example.com/sms",
        sms_webhook_secret=SecretStr("s" * 24),
    ).model_copy(update={"env": "production"})
    name, config = deployment_provider(settings, "SMS")
    with pytest.raises(AppError) as refused:
        require_https(settings, name, config)
    assert refused.value.code == "PROVIDER_URL_NOT_HTTPS"


@pytest.mark.parametrize(
    ("env", "url", "refused"),
    [
        ("production", "https://gateway.example.com/sms", False),
        ("production", "HTTP://gateway.example.com/sms", True),
        ("development", "http://gateway.example.com/sms", False),
    ],
)
def test_https_is_required_in_production_only(env: str, url: str, refused: bool) -> None:
    settings = base_settings().model_copy(update={"env": env})
    config = {"url": url, "signing_secret": "s" * 24}
    if refused:
        with pytest.raises(AppError):
            require_https(settings, "webhook", config)
    else:
        require_https(settings, "webhook", config)
