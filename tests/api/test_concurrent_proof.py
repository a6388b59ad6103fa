"""Two people proving one identifier at the same instant: one owns it, the other gets a clear 4xx."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from tests.support.selfservice import key, messages, register_phone, unique_phone

V2 = "/self-service/v2"
_CODE = re.compile(r"\b(\d{6})\b")


async def test_simultaneous_first_proofs_of_one_phone_never_fail_with_500(
    client: Any, runtime: Any, tenant: Any
) -> None:
    for _ in range(5):  # a few rounds: the race is won at a different point each time
        phone = unique_phone()
        claims = [await register_phone(client, tenant, phone) for _ in range(2)]
        sent = await messages(runtime, tenant.id, "OTP")
        codes = [_CODE.search(m.body_text).group(1) for m in sent[-2:]]  # type: ignore[union-attr]

        async def prove(claim: dict[str, Any], code: str) -> int:
            response = await client.post(
                f"{V2}/contacts/validate_otp",
                json={"auth_otp": claim["auth_otp"], "code": code},
                headers=key(tenant),
            )
            assert response.status_code < 500, response.text
            return int(response.status_code)

        statuses = await asyncio.gather(*(prove(c, k) for c, k in zip(claims, codes, strict=True)))
        assert sorted(statuses)[0] == 200, statuses
        assert statuses.count(200) == 1, statuses
        assert {s for s in statuses if s != 200} <= {400, 404, 409}, statuses
