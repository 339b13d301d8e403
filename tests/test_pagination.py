"""Keyset pagination: every row once, in order, whatever the page size and sort."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app.db import Database
from app.models.customers import Customer
from tests.factories import Org, Person, make_customer, make_org, problem

CUSTOMERS = "/api/v1/customers"
# Letters only, one case: every collation orders these the same way.
NAMES = ["Kilo", "Alpha", "Echo", "Golf", "Bravo", "India", "Delta"]


@pytest.fixture
async def org(database: Database) -> Org:
    return await make_org(database)


@pytest.fixture
async def customers(database: Database, org: Org) -> list[Customer]:
    return [await make_customer(database, org.east_rep1, name=f"{n} Co") for n in NAMES]


async def walk(client: httpx.AsyncClient, person: Person, **params: Any) -> list[dict[str, Any]]:
    """Follow next_cursor to the end; checks each page's size on the way."""
    limit = int(params.get("limit", 50))
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(CUSTOMERS, params=query, headers=person.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert 0 < len(page["items"]) <= limit or (not items and not page["items"])
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert len(page["items"]) == limit
    raise AssertionError("pagination did not end")


async def stored_order(database: Database, sort: str) -> list[str]:
    """Ids in the order the API promises: the sort column, then id, both the same way."""
    async with database.session(write=False) as session:
        rows = (await session.scalars(select(Customer))).all()
    column = sort.lstrip("-")
    ordered = sorted(rows, key=lambda c: (getattr(c, column), c.id), reverse=sort.startswith("-"))
    return [str(c.id) for c in ordered]


def forge(*parts: Any) -> str:
    raw = json.dumps(list(parts)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(cursor: str) -> list[Any]:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


@pytest.mark.parametrize("sort", ["created_at", "-created_at", "name", "-name"])
@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_every_row_once_in_order(
    client: httpx.AsyncClient,
    database: Database,
    org: Org,
    customers: list[Customer],
    sort: str,
    limit: int,
) -> None:
    items = await walk(client, org.east_rep1, sort=sort, limit=limit)
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == len(NAMES)
    assert ids == await stored_order(database, sort)
    if sort.endswith("name"):
        expected = sorted(NAMES, reverse=sort.startswith("-"))
        assert [item["name"] for item in items] == [f"{n} Co" for n in expected]


@pytest.mark.parametrize("sort", ["created_at", "-created_at"])
async def test_ties_are_broken_by_id(
    client: httpx.AsyncClient,
    database: Database,
    org: Org,
    customers: list[Customer],
    sort: str,
) -> None:
    # Rows written in one instant: without the id tie-break a page boundary could split the
    # tie and a row would be skipped or repeated.
    async with database.session() as session, session.begin():
        await session.execute(update(Customer).values(created_at=datetime(2026, 7, 1, tzinfo=UTC)))
    for limit in (1, 2, 3):
        ids = [item["id"] for item in await walk(client, org.east_rep1, sort=sort, limit=limit)]
        assert ids == await stored_order(database, sort)
        assert len(set(ids)) == len(NAMES)


async def test_exact_multiple_of_the_limit_has_no_empty_last_page(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    for name in NAMES[:4]:
        await make_customer(database, org.east_rep1, name=name)
    first = (await client.get(CUSTOMERS, params={"limit": 2}, headers=org.east_rep1.headers)).json()
    second = (
        await client.get(
            CUSTOMERS,
            params={"limit": 2, "cursor": first["next_cursor"]},
            headers=org.east_rep1.headers,
        )
    ).json()
    assert len(second["items"]) == 2 and second["next_cursor"] is None


async def test_empty_list(client: httpx.AsyncClient, org: Org) -> None:
    page = (await client.get(CUSTOMERS, headers=org.east_rep1.headers)).json()
    assert page == {"items": [], "next_cursor": None}


async def test_pages_respect_filters_and_scope(
    client: httpx.AsyncClient, database: Database, org: Org, customers: list[Customer]
) -> None:
    for name in ("Other One", "Other Two"):
        await make_customer(database, org.east_rep2, name=name)
    mine = await walk(client, org.east_rep1, sort="name", limit=2)
    assert {item["owner_id"] for item in mine} == {str(org.east_rep1.id)}
    region = await walk(client, org.east_manager, sort="name", limit=2)
    assert len(region) == len(NAMES) + 2
    filtered = await walk(
        client, org.east_manager, sort="-name", limit=1, owner_id=str(org.east_rep2.id)
    )
    assert [item["name"] for item in filtered] == ["Other Two", "Other One"]


@pytest.mark.parametrize(
    ("made_with", "used_with"),
    [("name", "-name"), ("name", "created_at"), ("-created_at", "created_at")],
)
async def test_cursor_of_another_sort_is_refused(
    client: httpx.AsyncClient, org: Org, customers: list[Customer], made_with: str, used_with: str
) -> None:
    first = await client.get(
        CUSTOMERS, params={"sort": made_with, "limit": 2}, headers=org.east_rep1.headers
    )
    cursor = first.json()["next_cursor"]
    assert cursor
    response = await client.get(
        CUSTOMERS, params={"sort": used_with, "cursor": cursor}, headers=org.east_rep1.headers
    )
    problem(response, 400, "bad_request")


async def test_tampered_cursors_are_refused(
    client: httpx.AsyncClient, org: Org, customers: list[Customer]
) -> None:
    first = await client.get(
        CUSTOMERS, params={"sort": "created_at", "limit": 2}, headers=org.east_rep1.headers
    )
    cursor = first.json()["next_cursor"]
    sort, value, row_id = read_cursor(cursor)
    assert sort == "created_at"
    tampered = [
        cursor[:-4],
        cursor[:5] + "$$$" + cursor[8:],
        forge(sort, value),
        forge(sort, value, row_id, "extra"),
        forge(sort, "yesterday", row_id),
        forge(sort, None, row_id),
        forge(sort, 12345, row_id),
        forge(sort, value, "not-a-uuid"),
        forge(sort, value, None),
        forge(sort, [value], row_id),
        # A time without a zone cannot be compared with the stored UTC times.
        forge(sort, value[:19], row_id),
        json.dumps({"sort": sort}),
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
        base64.urlsafe_b64encode(b'"abc"').decode(),
        base64.urlsafe_b64encode(b"42").decode(),
    ]
    for bad in tampered:
        response = await client.get(
            CUSTOMERS,
            params={"sort": "created_at", "cursor": bad},
            headers=org.east_rep1.headers,
        )
        problem(response, 400, "bad_request")


async def test_tampered_name_cursor_is_refused(
    client: httpx.AsyncClient, org: Org, customers: list[Customer]
) -> None:
    first = await client.get(
        CUSTOMERS, params={"sort": "name", "limit": 2}, headers=org.east_rep1.headers
    )
    _, _, row_id = read_cursor(first.json()["next_cursor"])
    for value in (17, None, ["Alpha"], {"a": 1}):
        response = await client.get(
            CUSTOMERS,
            params={"sort": "name", "cursor": forge("name", value, row_id)},
            headers=org.east_rep1.headers,
        )
        problem(response, 400, "bad_request")


async def test_a_forged_but_well_formed_cursor_is_just_a_position(
    client: httpx.AsyncClient, org: Org, customers: list[Customer]
) -> None:
    # Cursors are opaque, not secret: a well-formed one only moves the start, never the scope.
    # Its id is below every real id, so the named row itself comes first.
    response = await client.get(
        CUSTOMERS,
        params={"sort": "name", "cursor": forge("name", "Delta Co", "0" * 32)},
        headers=org.east_rep1.headers,
    )
    assert response.status_code == 200, response.text
    assert [i["name"] for i in response.json()["items"]] == [
        f"{n} Co" for n in sorted(NAMES) if n >= "Delta"
    ]
