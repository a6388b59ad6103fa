"""The per-application policy: API.md defaults, clamping, and the NIST failure delay."""

from __future__ import annotations

from crm.identities.policy import MAX_OTP_TTL_SECONDS, Policy, from_settings


def test_defaults_follow_api_md() -> None:
    policy = from_settings(None, "live")
    assert policy.otp_ttl_seconds == 300
    assert policy.otp_max_attempts == 5
    assert policy.otp_resend_cooldown_seconds == 30
    assert policy.otp_hourly_send_limit == 10
    assert policy.failure_lock_threshold == 1000
    assert policy.failure_lock_seconds == 3600


def test_code_lifetime_is_capped_at_ten_minutes() -> None:
    assert from_settings({"otp_ttl_seconds": 3600}, "test").otp_ttl_seconds == MAX_OTP_TTL_SECONDS


def test_zero_cooldown_only_in_test_mode() -> None:
    assert (
        from_settings({"otp_resend_cooldown_seconds": 0}, "test").otp_resend_cooldown_seconds == 0
    )
    assert (
        from_settings({"otp_resend_cooldown_seconds": 0}, "live").otp_resend_cooldown_seconds == 1
    )


def test_bad_values_fall_back_to_defaults() -> None:
    policy = from_settings(
        {
            "otp_max_attempts": "9",
            "strict_phone_validation": "yes",
            "password_reset_url": "javascript:x",
        },
        "live",
    )
    assert policy.otp_max_attempts == 5
    assert policy.strict_phone_validation is False
    assert policy.password_reset_url is None


def test_failure_delay_starts_at_fifty_and_grows_to_a_cap() -> None:
    policy = Policy()
    assert policy.failure_delay(49) == 0
    assert policy.failure_delay(50) == 30
    assert policy.failure_delay(51) == 60
    assert policy.failure_delay(999) == 3600


def test_a_client_is_delayed_long_before_the_identity() -> None:
    policy = Policy()
    assert policy.client_failure_delay(4) == 0
    assert policy.client_failure_delay(5) == 5
    assert policy.client_failure_delay(6) == 10
    assert policy.client_failure_delay_threshold * 10 <= policy.failure_delay_threshold
    assert policy.failure_lock_threshold >= 10 * policy.failure_delay_threshold


def test_a_clients_delay_stays_under_half_the_reset_period() -> None:
    # A client retrying whenever it may must never be quiet long enough to be forgotten.
    policy = from_settings({"failure_reset_seconds": 600}, "live")
    assert policy.client_failure_delay(1000) == 300
    assert Policy().client_failure_delay(1000) == 1800


def test_client_share_of_sends_is_a_setting() -> None:
    assert Policy().otp_hourly_send_limit_per_client == 3
    raw = {"otp_hourly_send_limit_per_client": 0}
    assert from_settings(raw, "live").otp_hourly_send_limit_per_client == 1


def test_email_password_registration_defaults_to_proof_first() -> None:
    assert from_settings(None, "live").email_password_registration == "proof_first"
    chosen = from_settings({"email_password_registration": "tokens_first"}, "live")
    assert chosen.email_password_registration == "tokens_first"
    for bad in ("TOKENS_FIRST", "", 1, None, ["tokens_first"]):
        policy = from_settings({"email_password_registration": bad}, "live")
        assert policy.email_password_registration == "proof_first"
