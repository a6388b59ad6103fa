"""Whose an Idempotency-Key record is: the API key, or the session for signed-in calls."""

from __future__ import annotations

from crm.api.idempotency import _caller
from crm.idempotency import service
from crm.tenants.schemas import CallerKey
from tests.conftest import TEST_SECRET


def _key(key_id: str | None) -> CallerKey:
    return CallerKey(
        key_id=key_id,
        tenant_id="t",
        tenant_name="Acme",
        application_id="app",
        kind="public",
        mode="test",
    )


def test_records_belong_to_the_api_key_or_to_the_signed_in_session() -> None:
    assert _caller(_key("k1"), None) == "key:k1"
    assert _caller(_key("k1"), "s1") == "session:s1"
    assert _caller(_key(None), None) == "app:app"


def test_callers_and_clients_are_stored_as_keyed_digests() -> None:
    def slot(caller: str) -> service.Slot:
        return service.slot(
            TEST_SECRET, tenant_id="t", mode="test", caller=caller, scope="POST /x", key="k"
        )

    assert slot("key:k1").caller != slot("key:k2").caller
    assert "k1" not in slot("key:k1").caller
    digest = service.client_digest(TEST_SECRET, "203.0.113.7")
    assert "203.0.113.7" not in digest and len(digest) == 64
    assert digest != service.client_digest("another-secret-" + "y" * 40, "203.0.113.7")


def test_request_digests_are_keyed_so_a_stored_one_cannot_be_tested_offline() -> None:
    body = b'{"auth_otp": "x", "code": "123456"}'
    assert service.request_hash(TEST_SECRET, body, "/p") != service.request_hash(
        "another-secret-" + "y" * 40, body, "/p"
    )
    # Key order and whitespace do not make another request.
    assert service.request_hash(TEST_SECRET, body, "/p") == service.request_hash(
        TEST_SECRET, b'{"code":"123456","auth_otp":"x"}', "/p"
    )
