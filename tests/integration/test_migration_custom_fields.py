"""Upgrading defines the custom field keys contacts already carry, so their writes keep working."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from sqlalchemy import text

from crm.db import create_engine
from crm.migrate import upgrade
from tests.conftest import base_settings


def test_keys_in_use_become_definitions(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    settings = base_settings(database_url=url)
    upgrade(settings, "0009_ops2")
    now = dt.datetime.now(dt.UTC).isoformat()

    async def seed_then_read() -> list[tuple[str, str, str, int]]:
        engine = create_engine(settings)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO tenants (id, name, settings, created_at) "
                        "VALUES ('t1', 'Old', '{}', :now), ('t2', 'Other', '{}', :now)"
                    ),
                    {"now": now},
                )
                for pk, tenant, fields in (
                    (1, "t1", [{"key": "tier", "value": "gold"}, {"key": "club", "value": "a"}]),
                    (2, "t1", [{"key": "tier", "value": "silver"}]),
                    (3, "t2", []),
                ):
                    await conn.execute(
                        text(
                            "INSERT INTO contacts (pk, tenant_id, mode, id, code, contact_type, "
                            "addresses, custom_fields, tags, service_acceptance, email_opt_out, "
                            "sms_opt_out, created_at, updated_at) VALUES (:pk, :tenant, 'live', "
                            ":id, :id, 'PERSON', '[]', :fields, '[]', 0, 0, 0, :now, :now)"
                        ),
                        {
                            "pk": pk,
                            "tenant": tenant,
                            "id": f"c{pk}",
                            "fields": json.dumps(fields),
                            "now": now,
                        },
                    )
            await asyncio.to_thread(upgrade, settings)
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text(
                        "SELECT tenant_id, key, value_type, max_length "
                        "FROM custom_field_definitions ORDER BY tenant_id, key"
                    )
                )
                return [tuple(row) for row in rows]
        finally:
            await engine.dispose()

    assert asyncio.run(seed_then_read()) == [
        ("t1", "club", "STRING", 1024),
        ("t1", "tier", "STRING", 1024),
    ]
