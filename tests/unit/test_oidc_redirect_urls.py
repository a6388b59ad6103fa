"""An application's oidc_redirect_urls: what the command line refuses, and what the policy keeps."""

from __future__ import annotations

import pytest

from crm.identities.policy import from_settings
from crm.social.redirect import allowed_redirects, redirect_url_problem


@pytest.mark.parametrize(
    "value",
    [
        "shop.example.com/done",
        "javascript:alert(1)",
        "https://shop.example.com/done#frag",
        "https://shop.example.com/a,ftp://files.example.com/",
        "https:///no-host",
    ],
)
def test_refused_values(value: str) -> None:
    assert redirect_url_problem(value) is not None


def test_accepted_values_are_compared_exactly() -> None:
    value = "https://shop.example.com/done, http://127.0.0.1:3000/cb?app=1"
    assert redirect_url_problem(value) is None
    policy = from_settings({"oidc_redirect_urls": value}, "live")
    allowed = allowed_redirects(policy.oidc_redirect_urls)
    assert allowed == {"https://shop.example.com/done", "http://127.0.0.1:3000/cb?app=1"}
    assert "https://shop.example.com/done/" not in allowed


def test_the_policy_keeps_only_web_urls() -> None:
    policy = from_settings({"oidc_redirect_urls": "javascript:x,https://a.example/cb"}, "live")
    assert policy.oidc_redirect_urls == "https://a.example/cb"
    assert from_settings({"oidc_redirect_urls": 7}, "live").oidc_redirect_urls is None
