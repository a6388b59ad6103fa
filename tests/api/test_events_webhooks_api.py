"""The events and webhooks Back-Office API in process, on both databases: validation, tenant
and mode isolation (404 for another tenant's ids), the secret shown once, events written with
their change and never carrying secrets."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from crm.runtime import Runtime
from crm.tenants import service as tenants
from crm.tenants.schemas import CreatedTenant

HOOKS = "/backoffice/v1/webhooks"
EVENTS = "/backoffice/v1/events"


def key(tenant: CreatedTenant, name: str = "secret_live") -> dict[str, str]:
    return {"api_key": tenant.keys[name]}


async def other_tenant(runtime: Runtime) -> CreatedTenant:
    async with runtime.sessions() as session:
        created = await tenants.create_tenant(session, runtime.clock, "Other Co")
        await session.commit()
    return created


async def create_hook(client: httpx.AsyncClient, tenant: CreatedTenant, **body: Any) -> Any:
    payload = {"url": "http://127.0.0.1:9/hook", "events": ["*"], **body}
    response = await client.post(HOOKS, json=payload, headers=key(tenant))
    assert response.status_code == 201, response.text
    return response.json()


async def test_the_secret_is_shown_once_and_rotation_returns_a_new_one(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    created = await create_hook(client, tenant, description="CRM sync")
    assert created["secret"].startswith("whsec_") and created["enabled"] is True
    shown = await client.get(f"{HOOKS}/{created['id']}", headers=key(tenant))
    assert shown.status_code == 200 and "secret" not in shown.json()
    listed = await client.get(HOOKS, headers=key(tenant))
    assert created["secret"] not in listed.text
    assert [h["id"] for h in listed.json()["content"]] == [created["id"]]
    rotated = await client.post(f"{HOOKS}/{created['id']}/rotate_secret", headers=key(tenant))
    assert rotated.status_code == 200
    assert rotated.json()["secret"] not in (created["secret"], None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": 5}, "url"),
        ({"url": "http://user:pw@127.0.0.1/x"}, "url"),
        ({"url": "http://127.0.0.1/" + "a" * 2100}, "url"),
        ({"events": []}, "events"),
        ({"events": ["contact.exploded"]}, "events"),
        ({"events": "contact.created"}, "events"),
        ({"events": [{"type": "x"}]}, "events"),
        ({"description": "x" * 501}, "description"),
    ],
)
async def test_invalid_endpoints_are_refused_with_the_field_named(
    client: httpx.AsyncClient, tenant: CreatedTenant, body: dict[str, Any], field: str
) -> None:
    payload = {"url": "http://127.0.0.1:9/hook", "events": ["*"], **body}
    response = await client.post(HOOKS, json=payload, headers=key(tenant))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "WEBHOOK_INVALID"
    assert response.json()["details"][0]["field"] == field
    listed = await client.get(HOOKS, headers=key(tenant))
    assert listed.json()["content"] == []


async def test_another_tenants_and_another_modes_ids_are_not_found(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    hook = await create_hook(client, tenant)
    created = await client.post(
        "/backoffice/v1/contacts", json={"first_name": "Ann"}, headers=key(tenant)
    )
    assert created.status_code == 201
    events = (await client.get(EVENTS, headers=key(tenant))).json()["content"]
    event_id = events[0]["id"]
    other = await other_tenant(runtime)
    for headers in (key(other), key(tenant, "secret_test")):
        for method, path in (
            ("GET", f"{HOOKS}/{hook['id']}"),
            ("PUT", f"{HOOKS}/{hook['id']}"),
            ("DELETE", f"{HOOKS}/{hook['id']}"),
            ("POST", f"{HOOKS}/{hook['id']}/rotate_secret"),
            ("GET", f"{HOOKS}/{hook['id']}/deliveries"),
            ("GET", f"{EVENTS}/{event_id}"),
            ("POST", f"{EVENTS}/{event_id}/redeliver"),
        ):
            answer = await client.request(method, path, headers=headers, json={})
            assert answer.status_code == 404, (method, path, answer.text)
        assert (await client.get(EVENTS, headers=headers)).json()["content"] == []
    # Public keys cannot read events at all.
    assert (await client.get(EVENTS, headers=key(tenant, "public_live"))).status_code == 403
    still = await client.get(f"{HOOKS}/{hook['id']}", headers=key(tenant))
    assert still.status_code == 200


async def test_events_name_the_contact_and_the_changed_fields_only(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    created = await client.post(
        "/backoffice/v1/contacts",
        json={"first_name": "Ann", "last_name": "Secretname"},
        headers=key(tenant),
    )
    contact_id = created.json()["id"]
    changed = await client.put(
        f"/backoffice/v1/contacts/{contact_id}",
        json={"last_name": "Othername"},
        headers=key(tenant),
    )
    assert changed.status_code == 200, changed.text
    listed = await client.get(EVENTS, params={"contact_id": contact_id}, headers=key(tenant))
    content = listed.json()["content"]
    assert [e["type"] for e in content] == ["contact.updated", "contact.created"]
    updated = content[0]
    assert updated["data"]["fields"] == ["last_name"]
    assert updated["data"]["contact"]["id"] == contact_id
    assert "Othername" not in listed.text and "Secretname" not in listed.text
    one = await client.get(f"{EVENTS}/{updated['id']}", headers=key(tenant))
    assert one.json() == updated
    only = await client.get(EVENTS, params={"type": "contact.created"}, headers=key(tenant))
    assert [e["type"] for e in only.json()["content"]] == ["contact.created"]
    later = await client.get(
        EVENTS, params={"created_after": updated["created"] + 1}, headers=key(tenant)
    )
    assert later.json()["content"] == []


async def test_a_refused_change_writes_no_event(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    first = await client.post(
        "/backoffice/v1/contacts", json={"first_name": "A", "code": "SAME"}, headers=key(tenant)
    )
    assert first.status_code == 201
    again = await client.post(
        "/backoffice/v1/contacts", json={"first_name": "B", "code": "SAME"}, headers=key(tenant)
    )
    assert again.status_code == 409
    listed = await client.get(EVENTS, headers=key(tenant))
    assert len(listed.json()["content"]) == 1


@pytest.mark.parametrize(
    "params",
    [
        {"type": "nope"},
        {"page": "0"},
        {"size": "101"},
        {"created_after": "-1"},
        {"created_before": "99999999999999"},
        {"contact_id": "x" * 37},
    ],
)
async def test_bad_event_filters_are_400(
    client: httpx.AsyncClient, tenant: CreatedTenant, params: dict[str, str]
) -> None:
    response = await client.get(EVENTS, params=params, headers=key(tenant))
    assert response.status_code == 400, response.text


async def test_put_changes_only_what_is_sent_and_delete_removes(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    hook = await create_hook(client, tenant, description="keep me")
    path = f"{HOOKS}/{hook['id']}"
    changed = await client.put(
        path, json={"events": ["contact.created"], "enabled": False}, headers=key(tenant)
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["events"] == ["contact.created"] and body["enabled"] is False
    assert body["description"] == "keep me" and body["url"] == hook["url"]
    refused = await client.put(path, json={"enabled": "yes"}, headers=key(tenant))
    assert refused.status_code == 400
    assert (await client.delete(path, headers=key(tenant))).status_code == 204
    assert (await client.get(path, headers=key(tenant))).status_code == 404


async def test_housekeeping_purges_events_past_their_retention(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from crm import maintenance
    from crm.events.models import Event

    await client.post("/backoffice/v1/contacts", json={"first_name": "Old"}, headers=key(tenant))
    await client.post("/backoffice/v1/contacts", json={"first_name": "New"}, headers=key(tenant))
    listed = (await client.get(EVENTS, headers=key(tenant))).json()["content"]
    old_id, new_id = listed[1]["id"], listed[0]["id"]
    async with runtime.sessions() as session:
        await session.execute(
            update(Event)
            .where(Event.id == old_id)
            .values(created_at=runtime.clock.now() - timedelta(days=31), fanout_pending=False)
        )
        await session.execute(update(Event).where(Event.id == new_id).values(fanout_pending=False))
        purged = await maintenance.purge(session, runtime.clock, 30, event_retention_days=30)
        await session.commit()
    assert purged.events >= 1
    remaining = (await client.get(EVENTS, headers=key(tenant))).json()["content"]
    assert [e["id"] for e in remaining] == [new_id]


async def test_wrong_codes_that_lock_an_identity_write_identity_locked(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    from tests.support.selfservice import last_code, register_phone, set_policy

    await set_policy(runtime, tenant, failure_lock_threshold=2)
    sent = await register_phone(client, tenant)
    code = await last_code(runtime, tenant.id)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(2):
        answer = await client.post(
            "/self-service/v2/contacts/validate_otp",
            json={"auth_otp": sent["auth_otp"], "code": wrong},
            headers={"api_key": tenant.keys["public_test"]},
        )
        assert answer.status_code == 400, answer.text
    listed = await client.get(
        EVENTS, params={"type": "identity.locked"}, headers=key(tenant, "secret_test")
    )
    (event,) = listed.json()["content"]
    assert event["data"]["reason"] == "CODE"
    assert event["data"]["identity"]["provider"] == "PHONE"
    assert code not in listed.text and wrong not in listed.text


@pytest.mark.parametrize(
    ("url", "env", "code"),
    [
        ("http://127.0.0.1:8080/hook", "development", "PROVIDER_URL_NOT_ALLOWED"),
        ("http://169.254.169.254/latest", "development", "PROVIDER_URL_NOT_ALLOWED"),
        ("http://[::1]/hook", "development", "PROVIDER_URL_NOT_ALLOWED"),
        ("http://10.1.2.3/hook", "development", "PROVIDER_URL_NOT_ALLOWED"),
        ("http://crm-events.invalid/hook", "development", "PROVIDER_HOST_UNRESOLVABLE"),
        ("http://93.184.216.34/hook", "production", "PROVIDER_URL_NOT_HTTPS"),
    ],
)
async def test_urls_follow_the_provider_address_rules(
    runtime: Runtime, url: str, env: str, code: str
) -> None:
    from crm.errors import AppError
    from crm.events.webhooks import check_url

    settings = runtime.settings.model_copy(
        update={"allow_private_provider_urls": False, "env": env}
    )
    with pytest.raises(AppError) as raised:
        await check_url(settings, url)
    assert raised.value.code == code
    assert raised.value.details[0]["field"] == "url"
    # A public address passes the same check.
    assert await check_url(settings, "https://93.184.216.34/hook") == "https://93.184.216.34/hook"


async def test_redeliver_queues_the_event_once_per_wanting_endpoint(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    from sqlalchemy import select

    from crm.messaging.models import OutboxMessage

    test = key(tenant, "secret_test")
    hooks = []
    for events in (["contact.created"], ["session.started"]):
        made = await client.post(
            HOOKS, json={"url": "http://127.0.0.1:9/h", "events": events}, headers=test
        )
        hooks.append(made.json())
    wanting = hooks[0]
    await client.post("/backoffice/v1/contacts", json={"first_name": "R"}, headers=test)
    (event,) = (await client.get(EVENTS, headers=test)).json()["content"]
    answer = await client.post(f"{EVENTS}/{event['id']}/redeliver", headers=test)
    assert answer.status_code == 202 and answer.json() == {"queued": 1}
    one = await client.post(
        f"{EVENTS}/{event['id']}/redeliver",
        json={"endpoint_id": wanting["id"]},
        headers=test,
    )
    assert one.json() == {"queued": 1}
    async with runtime.sessions() as session:
        rows = list(
            await session.scalars(select(OutboxMessage).where(OutboxMessage.subject == event["id"]))
        )
    assert [(r.channel, r.recipient, r.status) for r in rows] == [
        ("WEBHOOK", wanting["id"], "queued"),
        ("WEBHOOK", wanting["id"], "queued"),
    ]
    # Webhook deliveries are not messages: the test outbox does not list them.
    outbox = await client.get("/backoffice/v1/outbox", headers=test)
    assert outbox.json()["content"] == []
