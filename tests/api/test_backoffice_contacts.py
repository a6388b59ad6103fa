"""Back-Office contacts over HTTP: create, get, update, erase, search, idempotency, isolation, audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from crm.tenants.schemas import CreatedTenant

BASE = "/backoffice/v1/contacts"


def key(tenant: CreatedTenant, name: str = "secret_live") -> dict[str, str]:
    return {"api_key": tenant.keys[name]}


async def make(client: httpx.AsyncClient, tenant: CreatedTenant, **body: Any) -> str:
    response = await client.post(BASE, json=body, headers=key(tenant))
    assert response.status_code == 201, response.text
    contact_id: str = response.json()["id"]
    return contact_id


async def get(client: httpx.AsyncClient, tenant: CreatedTenant, ref: str) -> httpx.Response:
    return await client.get(f"{BASE}/{ref}", headers=key(tenant))


@pytest.fixture(autouse=True)
async def loyalty_tier_defined(client: httpx.AsyncClient, tenant: CreatedTenant) -> None:
    """FULL's custom field key, defined for the tenant (an undefined key is refused)."""
    defined = await client.put(
        "/backoffice/v1/custom_fields/loyalty_tier", json={}, headers=key(tenant)
    )
    assert defined.status_code == 201, defined.text


FULL = {
    "id": "ext-0001",
    "code": "CUST.0001",
    "title": "Mr",
    "first_name": "Ahmed",
    "middle_name": "A",
    "last_name": "Samir",
    "email_address": "Ahmed.Samir@Example.com",
    "phones": [
        {
            "phone_type": "MOBILE",
            "country_code": "CYP",
            "number": "99 123-456",
            "is_primary": "true",
        },
        {"phone_type": "LANDLINE", "number": "+44 (0)20 7946 0000"},
    ],
    "addresses": [
        {
            "address_type": "HOME",
            "address_line_1": "1 Main St",
            "town_city": "Nicosia",
            "postal_code": "1010",
            "country_code": "cyp",
            "is_primary": True,
        }
    ],
    "language_code": "en",
    "country_of_agreement": "CYP",
    "demographics": {"gender": "MALE", "date_of_birth": {"year": 1980, "month": 2, "day": 29}},
    "custom_fields": [{"key": "loyalty_tier", "value": "gold"}],
    "tags": ["vip", "vip", "b2c"],
    "service_acceptance": "true",
    "email_opt_out": "false",
    "sms_opt_out": True,
}


async def test_create_with_own_id_and_code_returns_them_and_get_shows_the_record(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    response = await client.post(BASE, json=FULL, headers=key(tenant))
    assert response.status_code == 201
    assert response.json() == {"id": "ext-0001"}
    body = (await get(client, tenant, "ext-0001")).json()
    assert body["code"] == "CUST.0001"
    assert body["contact_type"] == "PERSON"
    assert body["email_address"] == "Ahmed.Samir@Example.com"
    assert [(p["number"], p["country_code"], p["is_primary"]) for p in body["phones"]] == [
        ("+35799123456", "CYP", True),
        ("+442079460000", "GBR", False),
    ]
    assert body["addresses"][0]["country_code"] == "CYP"
    assert body["addresses"][0]["id"]
    assert body["demographics"] == {
        "gender": "MALE",
        "date_of_birth": {"year": 1980, "month": 2, "day": 29},
        "name_day": None,
        "passport": None,
        "id_details": None,
        "statutory_number": None,
    }
    assert body["custom_fields"] == [{"key": "loyalty_tier", "value": "gold"}]
    assert body["tags"] == ["vip", "b2c"]
    assert (body["service_acceptance"], body["email_opt_out"], body["sms_opt_out"]) == (
        True,
        False,
        True,
    )
    assert isinstance(body["created_date"], int) and body["created_date"] == body["updated_date"]


async def test_create_without_id_or_code_generates_uuid7_and_short_code(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    contact_id = await make(client, tenant, first_name="Ann")
    assert len(contact_id) == 36 and contact_id[14] == "7"
    body = (await get(client, tenant, contact_id)).json()
    assert len(body["code"]) == 11 and body["code"][4] == "-"
    by_code = await get(client, tenant, body["code"])
    assert by_code.json()["id"] == contact_id


async def test_get_by_ref_prefers_id_over_another_contacts_code(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await make(client, tenant, id="alpha", code="beta", first_name="A")
    await make(client, tenant, id="beta", code="gamma", first_name="B")
    assert (await get(client, tenant, "beta")).json()["first_name"] == "B"
    assert (await get(client, tenant, "gamma")).json()["id"] == "beta"


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [
        ({"id": "dup"}, {"id": "dup"}, "CONTACT_ID_ALREADY_EXISTS"),
        ({"code": "C1"}, {"code": "C1"}, "CONTACT_CODE_ALREADY_EXISTS"),
    ],
)
async def test_duplicate_id_or_code_is_409(
    client: httpx.AsyncClient,
    tenant: CreatedTenant,
    first: dict[str, str],
    second: dict[str, str],
    code: str,
) -> None:
    await make(client, tenant, **first)
    response = await client.post(BASE, json=second, headers=key(tenant))
    assert response.status_code == 409
    assert response.json()["code"] == code


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"id": "has space"}, "INVALID_CONTACT_ID"),
        ({"id": "x" * 37}, "INVALID_CONTACT_ID"),
        ({"id": "caf\u00e9"}, "INVALID_CONTACT_ID"),
        ({"id": "verify"}, "INVALID_CONTACT_ID"),
        ({"code": "a/b"}, "INVALID_CONTACT_CODE"),
        ({"id": 12}, "INVALID_REQUEST"),
        ({"contact_type": "COMPANY"}, "COMPANY_NAME_REQUIRED"),
        ({"contact_type": "ROBOT"}, "INVALID_REQUEST"),
        ({"first_name": "a\u202eb"}, "INVALID_REQUEST"),
        ({"first_name": "x" * 201}, "INVALID_REQUEST"),
        ({"email_address": "not-an-email"}, "INVALID_EMAIL"),
        ({"country_of_agreement": "XX"}, "INVALID_COUNTRY_CODE"),
        ({"phones": [{"number": "12"}]}, "INVALID_PHONE"),
        ({"phones": [{"number": "99123456", "country_code": "CYP"}] * 2}, "DUPLICATE_PHONE"),
        (
            {
                "phones": [
                    {"number": "+35799123456", "is_primary": True},
                    {"number": "+35799123457", "is_primary": True},
                ]
            },
            "MULTIPLE_PRIMARY",
        ),
        ({"addresses": [{"is_primary": True}, {"is_primary": True}]}, "MULTIPLE_PRIMARY"),
        (
            {"demographics": {"date_of_birth": {"year": 1999, "month": 2, "day": 30}}},
            "INVALID_DATE_OF_BIRTH",
        ),
        ({"custom_fields": [{"key": f"k{i}", "value": "v"} for i in range(51)]}, "INVALID_REQUEST"),
        ({"custom_fields": [{"key": "k", "value": "\u00e9" * 600}]}, "INVALID_REQUEST"),
        (
            {"custom_fields": [{"key": "k", "value": "a"}, {"key": "k", "value": "b"}]},
            "INVALID_REQUEST",
        ),
        ({"tags": ["t"] * 51}, "INVALID_REQUEST"),
        ({"sms_opt_out": "yes"}, "INVALID_REQUEST"),
        ({"phones": [{"number": "+35799123456"}] * 11}, "INVALID_REQUEST"),
    ],
)
async def test_invalid_create_is_400_with_stable_code_and_writes_nothing(
    client: httpx.AsyncClient, tenant: CreatedTenant, body: dict[str, Any], code: str
) -> None:
    response = await client.post(BASE, json=body, headers=key(tenant))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    listed = await client.get(BASE, params={"include_total": "true"}, headers=key(tenant))
    assert listed.json()["paging"]["total"] == 0


async def test_company_contact_needs_and_keeps_company_name(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    contact_id = await make(client, tenant, contact_type="COMPANY", company_name="Acme Ltd")
    response = await client.put(
        f"{BASE}/{contact_id}", json={"company_name": None}, headers=key(tenant)
    )
    assert response.json()["code"] == "COMPANY_NAME_REQUIRED"
    assert (await get(client, tenant, contact_id)).json()["company_name"] == "Acme Ltd"


async def test_partial_update_changes_given_fields_and_null_clears(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await client.post(BASE, json=FULL, headers=key(tenant))
    response = await client.put(
        f"{BASE}/CUST.0001",
        json={
            "first_name": "Ahmad",
            "middle_name": None,
            "phones": None,
            "demographics": {"gender": None},
            "tags": ["new"],
            "email_opt_out": "true",
        },
        headers=key(tenant),
    )
    assert response.status_code == 200
    assert response.json() == {"id": "ext-0001"}
    body = (await get(client, tenant, "ext-0001")).json()
    assert body["first_name"] == "Ahmad"
    assert body["middle_name"] is None
    assert body["last_name"] == "Samir"  # absent: unchanged
    assert body["phones"] == []
    assert body["demographics"]["gender"] is None
    assert body["demographics"]["date_of_birth"] == {"year": 1980, "month": 2, "day": 29}
    assert body["tags"] == ["new"]
    assert body["email_opt_out"] is True
    assert body["addresses"] == (await get(client, tenant, "ext-0001")).json()["addresses"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"code": "OTHER"}, "CONTACT_CODE_IMMUTABLE"),
        ({"contact_type": "COMPANY", "company_name": "X"}, "CONTACT_TYPE_IMMUTABLE"),
        ({"service_acceptance": None}, "INVALID_REQUEST"),
    ],
)
async def test_update_of_immutable_fields_is_400(
    client: httpx.AsyncClient, tenant: CreatedTenant, change: dict[str, Any], code: str
) -> None:
    await make(client, tenant, id="imm", code="IMM", first_name="I")
    response = await client.put(f"{BASE}/imm", json=change, headers=key(tenant))
    assert response.status_code == 400
    assert response.json()["code"] == code
    body = (await get(client, tenant, "imm")).json()
    assert (body["code"], body["contact_type"]) == ("IMM", "PERSON")


async def test_update_accepts_unchanged_code_and_type(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await make(client, tenant, id="same", code="SAME")
    response = await client.put(
        f"{BASE}/same",
        json={"code": "SAME", "contact_type": "PERSON", "title": "Dr"},
        headers=key(tenant),
    )
    assert response.status_code == 200
    assert (await get(client, tenant, "same")).json()["title"] == "Dr"


async def test_erase_leaves_tombstone_that_keeps_id_and_code_reserved(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await client.post(BASE, json=FULL, headers=key(tenant))
    response = await client.delete(f"{BASE}/ext-0001", headers=key(tenant))
    assert response.status_code == 204
    assert (await get(client, tenant, "ext-0001")).status_code == 404
    assert (await get(client, tenant, "CUST.0001")).json()["code"] == "CONTACT_NOT_FOUND"
    assert (await client.delete(f"{BASE}/ext-0001", headers=key(tenant))).status_code == 404
    again = await client.post(BASE, json={"id": "ext-0001"}, headers=key(tenant))
    assert again.status_code == 409 and again.json()["code"] == "CONTACT_ID_ALREADY_EXISTS"
    again = await client.post(BASE, json={"code": "CUST.0001"}, headers=key(tenant))
    assert again.json()["code"] == "CONTACT_CODE_ALREADY_EXISTS"
    found = await client.get(BASE, params={"search_value": "ahmed"}, headers=key(tenant))
    assert found.json()["content"] == []
    exists = await client.get(
        f"{BASE}/verify", params={"email_address": "ahmed.samir@example.com"}, headers=key(tenant)
    )
    assert exists.json() == {"contact_exists": False}


async def test_verify_finds_email_and_phone_in_any_format(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await client.post(BASE, json=FULL, headers=key(tenant))

    async def verify(**params: str) -> Any:
        response = await client.get(f"{BASE}/verify", params=params, headers=key(tenant))
        return response.json()

    assert await verify(email_address="AHMED.samir@example.COM") == {"contact_exists": True}
    assert await verify(email_address="nobody@example.com") == {"contact_exists": False}
    assert await verify(phone="99123456", country_code="CYP") == {"contact_exists": True}
    assert await verify(phone="0035799123456") == {"contact_exists": True}
    assert (await verify())["code"] == "VERIFY_NEEDS_ONE_IDENTIFIER"
    assert (await verify(phone="abc"))["code"] == "INVALID_PHONE"


# --- search -------------------------------------------------------------------------------


@pytest.fixture
async def people(client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Any) -> list[str]:
    """Five contacts created one second apart (the clock is moved, not waited for)."""
    from crm.clock import FrozenClock

    original = runtime.clock
    # Whole seconds, so epoch-second filters fall exactly on the boundaries.
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    runtime.clock = clock
    rows = [
        {
            "id": "p1",
            "code": "A-100",
            "first_name": "Zoë",
            "last_name": "Adams",
            "email_address": "zoe@example.com",
            "phones": [{"number": "+35799000001"}],
        },
        {
            "id": "p2",
            "code": "B-200",
            "first_name": "Bob",
            "last_name": "Brown",
            "email_address": "bob_b@example.com",
        },
        {
            "id": "p3",
            "code": "C-300",
            "contact_type": "COMPANY",
            "company_name": "100% Organic",
            "last_name": "Cole",
        },
        {
            "id": "p4",
            "code": "D-400",
            "first_name": "Dana",
            "last_name": "Brown",
            "phones": [{"number": "+447700900123", "phone_type": "MOBILE"}],
        },
        {"id": "p5", "code": "e-500", "first_name": "Eve", "last_name": "Evans"},
    ]
    try:
        for row in rows:
            await make(client, tenant, **row)
            clock.advance(1)
    finally:
        runtime.clock = original
    return [r["id"] for r in rows]  # type: ignore[misc]


async def ids(client: httpx.AsyncClient, tenant: CreatedTenant, **params: Any) -> list[str]:
    response = await client.get(BASE, params=params, headers=key(tenant))
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["content"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["p5", "p4", "p3", "p2", "p1"]),
        ({"order": "ASC"}, ["p1", "p2", "p3", "p4", "p5"]),
        ({"search_value": "zoe"}, ["p1"]),
        ({"search_value": "ZOË ADA"}, ["p1"]),
        ({"search_value": "adams zo"}, ["p1"]),
        ({"search_value": "brown"}, ["p4", "p2"]),
        ({"search_value": "bob_"}, ["p2"]),
        ({"search_value": "bo%"}, []),
        ({"search_value": "_"}, []),
        ({"search_value": "100%"}, ["p3"]),
        ({"search_value": "a-1"}, ["p1"]),
        ({"search_value": "E-500"}, ["p5"]),
        ({"search_value": "zoe@exa"}, ["p1"]),
        ({"search_value": "+357 99 000 001"}, ["p1"]),
        ({"search_value": "07700 900123", "country_code": "GBR"}, ["p4"]),
        ({"search_value": "0044 7700 900123"}, ["p4"]),
        ({"email_address": "BOB_B@example.com"}, ["p2"]),
        ({"phone": "7700900123", "country_code": "GBR"}, ["p4"]),
        ({"phone": "+35799000009"}, []),
        ({"code": "C-300"}, ["p3"]),
        ({"code": "c-300"}, []),
        ({"contact_type": "COMPANY"}, ["p3"]),
        ({"sort": "LAST_NAME", "order": "ASC"}, ["p1", "p2", "p4", "p3", "p5"]),
        ({"sort": "CODE", "order": "ASC"}, ["p1", "p2", "p3", "p4", "p5"]),
        ({"sort": "UPDATED_DATE", "order": "ASC"}, ["p1", "p2", "p3", "p4", "p5"]),
    ],
)
async def test_search_filters_and_sorts(
    client: httpx.AsyncClient,
    tenant: CreatedTenant,
    people: list[str],
    params: dict[str, str],
    expected: list[str],
) -> None:
    assert await ids(client, tenant, **params) == expected


async def test_date_filters_bound_by_epoch_seconds(
    client: httpx.AsyncClient, tenant: CreatedTenant, people: list[str]
) -> None:
    first = (await get(client, tenant, "p1")).json()["created_date"]
    assert await ids(client, tenant, **{"created_date[gt]": first + 2}) == ["p5", "p4"]
    assert await ids(
        client, tenant, **{"created_date[gte]": first + 2, "created_date[lt]": first + 4}
    ) == ["p4", "p3"]
    assert await ids(client, tenant, **{"created_date[lte]": first}) == ["p1"]
    assert await ids(client, tenant, **{"updated_date[gte]": first + 4}) == ["p5"]
    assert await ids(
        client, tenant, **{"updated_date[lt]": first + 1, "updated_date[gt]": first - 1}
    ) == ["p1"]


async def test_sort_on_equal_values_breaks_ties_by_id(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Any
) -> None:
    from crm.clock import FrozenClock

    original, runtime.clock = runtime.clock, FrozenClock()
    try:
        for name in ("t3", "t1", "t2"):
            await make(client, tenant, id=name, last_name="Same")
    finally:
        runtime.clock = original
    assert await ids(client, tenant) == ["t3", "t2", "t1"]
    assert await ids(client, tenant, sort="LAST_NAME", order="ASC") == ["t1", "t2", "t3"]


async def test_paging_edges(
    client: httpx.AsyncClient, tenant: CreatedTenant, people: list[str]
) -> None:
    response = await client.get(
        BASE, params={"size": 2, "page": 3, "include_total": "true"}, headers=key(tenant)
    )
    assert response.json()["paging"] == {"page": 3, "size": 2, "total": 5, "has_more": False}
    assert [c["id"] for c in response.json()["content"]] == ["p1"]
    response = await client.get(BASE, params={"size": 2, "page": 2}, headers=key(tenant))
    assert response.json()["paging"] == {"page": 2, "size": 2, "total": None, "has_more": True}
    response = await client.get(BASE, params={"size": 5}, headers=key(tenant))
    assert response.json()["paging"]["has_more"] is False
    response = await client.get(BASE, params={"page": 9}, headers=key(tenant))
    assert response.json()["content"] == [] and response.json()["paging"]["has_more"] is False


@pytest.fixture
async def namesakes(client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Any) -> list[str]:
    """Contacts that a name search tells apart, some created in the same second (ties on
    created_date, broken by id), one matching through several search branches at once."""
    from crm.clock import FrozenClock

    original = runtime.clock
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    runtime.clock = clock
    rows: list[tuple[dict[str, Any], int]] = [
        ({"id": "n1", "code": "N-1", "first_name": "Zoë", "last_name": "Ádams"}, 1),
        ({"id": "n2", "first_name": "ADAM", "last_name": "Zorn", "code": "ZO-2"}, 0),
        # Same second as n2: the tie-break on id orders n3 before n2 newest-first.
        ({"id": "n3", "code": "N-3", "first_name": "Zoe", "last_name": "Adamson"}, 1),
        # First name, email and code all start with "zo": it must still come back once.
        (
            {
                "id": "n4",
                "first_name": "Zola",
                "last_name": "Quinn",
                "email_address": "zola@example.com",
                "code": "ZOLA-4",
            },
            1,
        ),
        ({"id": "n5", "code": "N-5", "contact_type": "COMPANY", "company_name": "Zo Adams Ltd"}, 1),
        ({"id": "n6", "code": "N-6", "first_name": "Adams", "last_name": "Zoeller"}, 0),
        (
            {
                "id": "n7",
                "code": "N-7",
                "first_name": "Mary Ann",
                "middle_name": "Jo",
                "last_name": "Zoë",
            },
            1,
        ),
    ]
    try:
        for row, advance in rows:
            await make(client, tenant, **row)
            clock.advance(advance)
    finally:
        runtime.clock = original
    return [str(row["id"]) for row, _ in rows]


@pytest.mark.parametrize(
    ("search_value", "expected"),
    [
        # One word: a prefix of the first name, last name, company, email or code.
        ("zo", ["n7", "n6", "n5", "n4", "n3", "n2", "n1"]),
        ("ZOË", ["n7", "n6", "n3", "n1"]),
        ("adam", ["n6", "n3", "n2", "n1"]),
        ("ádamso", ["n3"]),
        # Two words: first-name prefix and last-name prefix, in either order, any case/accents.
        ("zoe adams", ["n6", "n3", "n1"]),
        ("Adams Zoe", ["n6", "n3", "n1"]),
        ("ZOË ÁDAMS", ["n6", "n3", "n1"]),
        ("zoe adamso", ["n3"]),
        ("zo ad", ["n6", "n5", "n3", "n2", "n1"]),
        ("adam zorn", ["n2"]),
        ("zorn adam", ["n2"]),
        ("zoe  adamson", ["n3"]),
        ("zoe zorn", []),
        # Middle words are ignored: the first token is the first name, the last the surname.
        ("mary zoe", ["n7"]),
        ("mary jo zoe", ["n7"]),
        ("zoe mary", ["n7"]),
        # A company name is matched as typed, spaces included.
        ("zo adams l", ["n5"]),
        ("zola@exa", ["n4"]),
        ("zola-4", ["n4"]),
    ],
)
async def test_name_search_finds_first_last_and_last_first_in_order(
    client: httpx.AsyncClient,
    tenant: CreatedTenant,
    namesakes: list[str],
    search_value: str,
    expected: list[str],
) -> None:
    assert await ids(client, tenant, search_value=search_value, size=100) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"search_value": "zo"}, ["n7", "n6", "n5", "n4", "n3", "n2", "n1"]),
        ({"search_value": "zo", "order": "ASC"}, ["n1", "n2", "n3", "n4", "n5", "n6", "n7"]),
        ({"search_value": "zo ad"}, ["n6", "n5", "n3", "n2", "n1"]),
        ({"search_value": "adams zoe", "sort": "LAST_NAME", "order": "ASC"}, ["n1", "n3", "n6"]),
        # Where NULLs sort differs between databases; only stability and completeness are checked.
        ({"search_value": "zo", "sort": "LAST_NAME", "order": "ASC"}, None),
        ({"search_value": "zo", "sort": "CODE", "order": "DESC"}, None),
        ({"search_value": "zo", "sort": "UPDATED_DATE", "order": "DESC"}, None),
    ],
)
async def test_search_value_pages_are_stable_and_complete(
    client: httpx.AsyncClient,
    tenant: CreatedTenant,
    namesakes: list[str],
    params: dict[str, str],
    expected: list[str] | None,
) -> None:
    whole = await ids(client, tenant, size=100, **params)
    if expected is not None:
        assert whole == expected
    for size in (1, 2, 3):
        seen: list[str] = []
        for page in range(1, 10):
            response = await client.get(
                BASE,
                params={**params, "size": size, "page": page, "include_total": "true"},
                headers=key(tenant),
            )
            assert response.status_code == 200, response.text
            body = response.json()
            seen += [c["id"] for c in body["content"]]
            assert body["paging"]["total"] == len(whole)
            assert body["paging"]["has_more"] is (len(seen) < len(whole))
            if not body["paging"]["has_more"]:
                break
        assert seen == whole, (size, seen)


async def test_name_search_skips_erased_and_other_filters_still_apply(
    client: httpx.AsyncClient, tenant: CreatedTenant, namesakes: list[str]
) -> None:
    erased = await client.delete(f"{BASE}/n3", headers=key(tenant))
    assert erased.status_code in (200, 204), erased.text
    assert await ids(client, tenant, search_value="zoe adams") == ["n6", "n1"]
    assert await ids(client, tenant, search_value="zo", contact_type="COMPANY") == ["n5"]
    response = await client.get(
        BASE, params={"search_value": "zo", "include_total": "true"}, headers=key(tenant)
    )
    assert response.json()["paging"]["total"] == 6


async def test_empty_tenant_lists_nothing(client: httpx.AsyncClient, tenant: CreatedTenant) -> None:
    response = await client.get(BASE, params={"include_total": "true"}, headers=key(tenant))
    assert response.json() == {
        "paging": {"page": 1, "size": 10, "total": 0, "has_more": False},
        "content": [],
    }


@pytest.mark.parametrize(
    "params",
    [
        {"size": 0},
        {"size": 101},
        {"page": 0},
        {"page": "x"},
        {"page": 100000, "size": 100},
        {"sort": "EMAIL"},
        {"order": "UP"},
        {"search_value": "x" * 101},
        {"created_date[gte]": -1},
        {"created_date[gte]": 10**20},
        {"email_address": "nope"},
        {"phone": "12"},
        {"phone": "99123456"},
    ],
)
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient, tenant: CreatedTenant, params: dict[str, Any]
) -> None:
    response = await client.get(BASE, params=params, headers=key(tenant))
    assert response.status_code == 400, response.text
    assert response.json()["code"] in {
        "INVALID_REQUEST",
        "INVALID_SEARCH",
        "INVALID_EMAIL",
        "INVALID_PHONE",
    }


# --- idempotency --------------------------------------------------------------------------


async def test_idempotency_key_replays_first_answer_and_refuses_other_body(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    headers = {**key(tenant), "Idempotency-Key": "create-1"}
    first = await client.post(BASE, json={"first_name": "Once"}, headers=headers)
    second = await client.post(BASE, json={"first_name": "Once"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    other = await client.post(BASE, json={"first_name": "Twice"}, headers=headers)
    assert other.status_code == 409
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    listed = await client.get(BASE, params={"include_total": "true"}, headers=key(tenant))
    assert listed.json()["paging"]["total"] == 1


# --- isolation ----------------------------------------------------------------------------


@pytest.fixture
async def other_tenant(runtime: Any) -> CreatedTenant:
    from crm.tenants import service as tenants

    async with runtime.sessions() as session:
        created = await tenants.create_tenant(session, runtime.clock, "Other")
        await session.commit()
    return created


@pytest.mark.parametrize("who", ["other_tenant_live", "same_tenant_test"])
async def test_other_tenants_and_test_mode_cannot_touch_a_live_contact(
    client: httpx.AsyncClient, tenant: CreatedTenant, other_tenant: CreatedTenant, who: str
) -> None:
    await client.post(BASE, json=FULL, headers=key(tenant))
    intruder = key(other_tenant) if who == "other_tenant_live" else key(tenant, "secret_test")
    for ref in ("ext-0001", "CUST.0001"):
        assert (await client.get(f"{BASE}/{ref}", headers=intruder)).status_code == 404
        put = await client.put(f"{BASE}/{ref}", json={"first_name": "Evil"}, headers=intruder)
        assert put.status_code == 404
        assert (await client.delete(f"{BASE}/{ref}", headers=intruder)).status_code == 404
        added = await client.post(
            f"{BASE}/{ref}/identities",
            json={"provider": "EMAIL", "email": "evil@example.com"},
            headers=intruder,
        )
        assert added.status_code == 404
        assert (await client.get(f"{BASE}/{ref}/audit", headers=intruder)).status_code == 404
    for params in ({}, {"search_value": "ahmed"}, {"code": "CUST.0001"}, {"phone": "+35799123456"}):
        assert (await client.get(BASE, params=params, headers=intruder)).json()["content"] == []
    verify = await client.get(
        f"{BASE}/verify", params={"email_address": "ahmed.samir@example.com"}, headers=intruder
    )
    assert verify.json() == {"contact_exists": False}
    # The owner's contact is untouched, and the same id is free in the other space.
    body = (await get(client, tenant, "ext-0001")).json()
    assert body["first_name"] == "Ahmed"
    created = await client.post(
        BASE, json={"id": "ext-0001", "code": "CUST.0001"}, headers=intruder
    )
    assert created.status_code == 201


async def test_public_key_and_missing_key_are_refused(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    assert (await client.get(BASE, headers=key(tenant, "public_live"))).status_code == 403
    assert (await client.get(BASE)).status_code == 401


# --- audit --------------------------------------------------------------------------------


async def test_audit_lists_who_changed_which_fields_newest_first(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await make(client, tenant, id="aud", first_name="A", email_address="a@example.com")
    await client.put(f"{BASE}/aud", json={"first_name": "B", "last_name": "C"}, headers=key(tenant))
    await client.put(f"{BASE}/aud", json={"first_name": "B"}, headers=key(tenant))  # no change
    response = await client.get(
        f"{BASE}/aud/audit", params={"include_total": "true"}, headers=key(tenant)
    )
    body = response.json()
    assert body["paging"]["total"] == 2
    assert [(e["action"], e["fields"]) for e in body["content"]] == [
        ("UPDATED", ["first_name", "last_name"]),
        ("CREATED", ["email_address", "first_name"]),
    ]
    assert all(e["actor"].startswith("api_key:") and len(e["actor"]) > 8 for e in body["content"])
    assert tenant.keys["secret_live"] not in response.text
    page2 = await client.get(
        f"{BASE}/aud/audit", params={"size": 1, "page": 2}, headers=key(tenant)
    )
    assert [e["action"] for e in page2.json()["content"]] == ["CREATED"]


async def test_consent_history_records_each_change(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await make(client, tenant, id="con", sms_opt_out="false")
    await client.put(f"{BASE}/con", json={"sms_opt_out": "true"}, headers=key(tenant))
    history = (await client.get(f"{BASE}/con/consents", headers=key(tenant))).json()
    assert [(h["flag"], h["value"], h["source"]) for h in history] == [
        ("sms_opt_out", False, "BACK_OFFICE"),
        ("sms_opt_out", True, "BACK_OFFICE"),
    ]
