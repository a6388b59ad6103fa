"""Per-client limits and allowed origins as application settings, over deployment defaults."""

from __future__ import annotations

from crm.identities.policy import (
    CLIENT_LIMITS,
    ClientOperation,
    client_limit_defaults,
    from_settings,
    origin_problem,
    parse_origins,
)
from crm.settings import Settings


def test_every_client_limit_has_a_deployment_setting_of_the_same_name() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    defaults = client_limit_defaults(settings)
    assert set(defaults) == {name for name, _ in CLIENT_LIMITS.values()}
    assert set(ClientOperation) == set(CLIENT_LIMITS)
    # The built-in policy agrees with the settings' own defaults.
    assert from_settings(None, "live").client_limit(ClientOperation.REGISTER) == (30, 3600)
    assert from_settings(None, "live", defaults).client_limit(ClientOperation.SIGN_IN) == (60, 60)


def test_application_setting_beats_deployment_default() -> None:
    defaults = {"signin_limit_per_client_minute": 500}
    policy = from_settings({"otp_request_limit_per_client_minute": 7}, "live", defaults)
    assert policy.client_limit(ClientOperation.SIGN_IN) == (500, 60)
    assert policy.client_limit(ClientOperation.OTP_REQUEST) == (7, 60)
    overridden = from_settings({"signin_limit_per_client_minute": 5}, "live", defaults)
    assert overridden.client_limit(ClientOperation.SIGN_IN) == (5, 60)


def test_bad_client_limits_are_clamped_or_ignored() -> None:
    policy = from_settings(
        {
            "register_limit_per_client_hour": 0,
            "signin_limit_per_client_minute": 10**9,
            "otp_validate_limit_per_client_minute": "5",
            "password_reset_limit_per_client_minute": True,
        },
        "live",
    )
    assert policy.register_limit_per_client_hour == 1
    assert policy.signin_limit_per_client_minute == 100_000
    assert policy.otp_validate_limit_per_client_minute == 60
    assert policy.password_reset_limit_per_client_minute == 60


def test_origins_are_brought_to_the_form_browsers_send() -> None:
    raw = "HTTPS://Portal.Example.com:443/, http://localhost:3000, https://[::1]:8443"
    assert parse_origins(raw) == {
        "https://portal.example.com",
        "http://localhost:3000",
        "https://[::1]:8443",
    }
    assert origin_problem(raw) is None
    assert from_settings({"allowed_origins": raw}, "live").origins == parse_origins(raw)


def test_what_is_not_an_origin_is_refused() -> None:
    for bad in [
        "null",
        "portal.example.com",
        "https://portal.example.com/app",
        "https://*.example.com",
        "ftp://example.com",
        "https://user@example.com",
        "https://exämple.com",
        "https://example.com?x=1",
        "https://example.com:99999",
        "https://exa mple.com",
        "https://under_score.example",
        "https://[zz::1]",
        "",
    ]:
        assert origin_problem(bad) is not None, bad
        assert parse_origins(bad) == frozenset(), bad
    # One bad entry does not cost the good ones when read, but is refused when set.
    assert parse_origins("https://a.example, null") == {"https://a.example"}
    assert origin_problem("https://a.example, null") is not None
    assert parse_origins(["https://a.example"]) == frozenset()
    assert parse_origins("*") == {"*"}
