"""Customers: creating, reading, changing, duplicates, soft delete, classification, lists."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db import Database
from app.models.customers import Customer, CustomerRead
from app.models.types import utcnow
from tests.factories import Org, Person, etag_of, listed_as_read, make_customer, make_org, problem

API = "/api/v1"


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def get(client: httpx.AsyncClient, person: Person, customer_id: Any) -> dict[str, Any]:
    response = await client.get(f"{API}/customers/{customer_id}", headers=person.headers)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == etag_of(CustomerRead, response)
    return response.json()


async def create(client: httpx.AsyncClient, person: Person, **fields: Any) -> httpx.Response:
    return await client.post(f"{API}/customers", json=fields, headers=person.headers)


async def test_create_and_read_back(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    fields = {
        "name": "Shanghai Lianhua Trading Co.",
        "industry": "Wholesale",
        "address": "1 Nanjing Road, Shanghai",
        "phone": "+86 21 5555 0101",
        "email": "buyer@lianhua.example.com",
        "source": "exhibition",
        "needs": "Cold-chain storage",
    }
    response = await create(client, org.east_rep1, **fields)
    assert response.status_code == 201, response.text
    body = response.json()
    assert {k: body[k] for k in fields} == fields
    assert body["owner_id"] == str(org.east_rep1.id)
    assert body["region_id"] == str(org.east.id)
    assert body["status"] == "prospect"
    assert (body["classification"], body["suggested_classification"]) == ("C", "C")
    assert body["classification_overridden"] is False and body["classification_reason"] is None
    assert body["last_follow_up_at"] is None
    # A new C customer is due for a follow-up 30 days after creation.
    assert at(body["follow_up_due_at"]) == at(body["created_at"]) + timedelta(days=30)
    assert await get(client, org.east_rep1, body["id"]) == body


async def test_who_may_own_a_new_customer(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    response = await create(
        client, org.east_manager, name="Given Co", owner_id=str(org.east_rep2.id)
    )
    assert response.status_code == 201, response.text
    assert response.json()["owner_id"] == str(org.east_rep2.id)
    other_region = await create(
        client, org.east_manager, name="Stray Co", owner_id=str(org.north_rep.id)
    )
    problem(other_region, 403, "forbidden")
    for_colleague = await create(
        client, org.east_rep1, name="Sneaky Co", owner_id=str(org.east_rep2.id)
    )
    problem(for_colleague, 403, "forbidden")
    # The director hands new customers to a rep; the region is the rep's.
    unowned = problem(
        await create(client, org.director, name="Nobody's Co"), 422, "validation_error"
    )
    assert unowned["errors"][0]["loc"] == ["body", "owner_id"]
    given = await create(client, org.director, name="Northern Co", owner_id=str(org.north_rep.id))
    assert given.status_code == 201, given.text
    assert given.json()["region_id"] == str(org.north.id)


READ_ONLY = {
    "id": str(uuid.uuid4()),
    "owner_id": None,  # filled with another rep's id
    "region_id": None,  # filled with another region's id
    "classification": "A",
    "suggested_classification": "A",
    "classification_overridden": True,
    "classification_reason": "Because",
    "classified_by_id": str(uuid.uuid4()),
    "classified_at": "2020-01-01T00:00:00Z",
    "status": "active",
    "version": 9,
    "created_at": "2020-01-01T00:00:00Z",
    "updated_at": "2020-01-01T00:00:00Z",
    "last_follow_up_at": "2020-01-01T00:00:00Z",
    "follow_up_due_at": "2020-01-01T00:00:00Z",
    "deleted_at": "2020-01-01T00:00:00Z",
    "favourite_colour": "blue",
}


@pytest.mark.parametrize("field", sorted(READ_ONLY))
async def test_patch_refuses_read_only_fields(
    client: httpx.AsyncClient, database: Database, field: str
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1, name="Fixed Fields Ltd")
    value = READ_ONLY[field]
    if field == "owner_id":
        value = str(org.east_rep2.id)
    elif field == "region_id":
        value = str(org.north.id)
    before = await get(client, org.east_manager, customer.id)
    response = await client.patch(
        f"{API}/customers/{customer.id}",
        json={"industry": "Changed", field: value},
        headers=org.east_manager.headers,
    )
    body = problem(response, 422, "validation_error")
    assert ["body", field] in [e["loc"] for e in body["errors"]]
    assert await get(client, org.east_manager, customer.id) == before


async def test_patch_changes_fields_and_honours_if_match(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1, name="Old Name Ltd")
    path = f"{API}/customers/{customer.id}"
    headers = org.east_rep1.headers
    stale = await client.patch(path, json={"name": "X"}, headers={**headers, "If-Match": '"2"'})
    problem(stale, 412, "version_conflict")
    response = await client.patch(
        path,
        json={"name": "New Name Ltd", "email": "a@b.example.com", "source": "web"},
        headers={**headers, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["email"], body["source"], body["version"]) == (
        "New Name Ltd",
        "a@b.example.com",
        "web",
        2,
    )
    assert response.headers["etag"] == etag_of(CustomerRead, response)
    assert response.json()["version"] == 2
    problem(await client.patch(path, json={"name": None}, headers=headers), 422, "validation_error")
    problem(
        await client.patch(path, json={"source": "psychic"}, headers=headers),
        422,
        "validation_error",
    )
    assert (await get(client, org.east_rep1, customer.id))["name"] == "New Name Ltd"
    # Sending what is already stored changes nothing: no new version, no event.
    same = await client.patch(path, json={"name": "New Name Ltd", "source": "web"}, headers=headers)
    assert same.status_code == 200 and same.json()["version"] == 2
    feed = await client.get(f"{API}/events", params={"type": "customer.updated"}, headers=headers)
    assert len(feed.json()["items"]) == 1


@pytest.mark.parametrize(
    "name",
    [
        "acme trading co",
        "ACME  TRADING  CO.",
        "Acme-Trading, Co",
        "ＡＣＭＥ Ｔｒａｄｉｎｇ Ｃｏ",
        " Acme_Trading/Co ",
    ],
)
async def test_duplicate_names_are_refused(
    client: httpx.AsyncClient, database: Database, name: str
) -> None:
    org = await make_org(database)
    existing = await make_customer(database, org.east_rep1, name="Acme Trading Co.")
    body = problem(await create(client, org.east_rep1, name=name), 409, "conflict")
    assert body["reason"] == "duplicate_name"
    assert body["existing_id"] == str(existing.id)


async def test_duplicate_names_only_name_what_the_caller_may_see(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    existing = await make_customer(database, org.east_rep1, name="Secretive Ltd", phone="021-5555")
    for person, sees in [
        (org.east_rep1, True),
        (org.east_rep2, False),
        (org.north_rep, False),
        (org.east_manager, True),
        (org.north_manager, False),
        (org.director, True),
    ]:
        # The director must name an owner; any rep will do, the duplicate is what stops it.
        owner = {"owner_id": str(org.east_rep2.id)} if person is org.director else {}
        by_name = problem(
            await create(client, person, name="secretive ltd", **owner), 409, "conflict"
        )
        by_phone = problem(
            await create(client, person, name="Other Name", phone="(021) 5555", **owner),
            409,
            "conflict",
        )
        assert (by_name["reason"], by_phone["reason"]) == ("duplicate_name", "duplicate_phone")
        for body in (by_name, by_phone):
            assert body.get("existing_id") == (str(existing.id) if sees else None)
            if not sees:
                assert "Secretive" not in body["detail"]
    async with database.session(write=False) as s, s.begin():
        assert (await s.scalars(select(Customer.id))).all() == [existing.id]


async def test_patch_to_a_duplicate_is_refused(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    await make_customer(database, org.east_rep1, name="Taken Name", phone="+86 10 1234")
    mine = await make_customer(database, org.east_rep1, name="Free Name")
    path = f"{API}/customers/{mine.id}"
    headers = org.east_rep1.headers
    dup_name = problem(
        await client.patch(path, json={"name": "TAKEN name"}, headers=headers), 409, "conflict"
    )
    assert dup_name["reason"] == "duplicate_name"
    dup_phone = problem(
        await client.patch(path, json={"phone": "86101234"}, headers=headers), 409, "conflict"
    )
    assert dup_phone["reason"] == "duplicate_phone"
    # A new spelling of its own name is not a duplicate of itself.
    renamed = await client.patch(path, json={"name": "FREE  name"}, headers=headers)
    assert renamed.status_code == 200 and renamed.json()["name"] == "FREE  name"


async def test_soft_delete(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    doomed = await make_customer(database, org.east_rep1, name="Doomed Ltd", phone="555 0100")
    kept = await make_customer(database, org.east_rep1, name="Kept Ltd")
    path = f"{API}/customers/{doomed.id}"
    stale = await client.delete(path, headers={**org.east_manager.headers, "If-Match": '"4"'})
    problem(stale, 412, "version_conflict")
    response = await client.delete(path, headers={**org.east_manager.headers, "If-Match": '"1"'})
    assert response.status_code == 204, response.text

    for person in (org.east_rep1, org.east_manager, org.director):
        problem(await client.get(path, headers=person.headers), 404, "not_found")
        listed = await client.get(f"{API}/customers", headers=person.headers)
        assert [c["id"] for c in listed.json()["items"]] == [str(kept.id)]
    problem(
        await client.patch(path, json={"industry": "x"}, headers=org.east_rep1.headers),
        404,
        "not_found",
    )
    problem(await client.delete(path, headers=org.director.headers), 404, "not_found")

    async with database.session(write=False) as s, s.begin():
        row = await s.get_one(Customer, doomed.id)
        assert row.deleted_at is not None and row.name == "Doomed Ltd"
    audit = await client.get(
        f"{API}/audit-log", params={"entity_id": str(doomed.id)}, headers=org.director.headers
    )
    assert [e["action"] for e in audit.json()["items"]] == ["delete", "create"]
    assert audit.json()["items"][0]["after"]["deleted_at"] is not None

    # The deleted customer no longer holds its name or phone.
    again = await create(client, org.east_rep2, name="DOOMED LTD", phone="5550100")
    assert again.status_code == 201, again.text


async def test_classification_override_and_return(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1, name="Key Account Ltd")
    path = f"{API}/customers/{customer.id}/classification"
    created = at((await get(client, org.east_rep1, customer.id))["created_at"])

    for bad in (
        {"classification": "A"},
        {"classification": "D", "reason": "x"},
        {"classification": "A", "reason": ""},
    ):
        problem(
            await client.put(path, json=bad, headers=org.east_manager.headers),
            422,
            "validation_error",
        )
    problem(
        await client.put(
            path, json={"classification": "A", "reason": "x"}, headers=org.east_rep1.headers
        ),
        403,
        "forbidden",
    )

    response = await client.put(
        path,
        json={"classification": "A", "reason": "Strategic partner"},
        headers=org.east_manager.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["classification"], body["suggested_classification"]) == ("A", "C")
    assert body["classification_overridden"] is True
    assert body["classification_reason"] == "Strategic partner"
    assert body["classified_by_id"] == str(org.east_manager.id)
    assert at(body["follow_up_due_at"]) == created + timedelta(days=7)
    assert await get(client, org.east_rep1, customer.id) == body

    back = await client.delete(path, headers=org.director.headers)
    assert back.status_code == 200, back.text
    body = back.json()
    assert (body["classification"], body["classification_overridden"]) == ("C", False)
    assert body["classification_reason"] is None
    assert at(body["follow_up_due_at"]) == created + timedelta(days=30)


async def _named(database: Database, org: Org) -> dict[str, uuid.UUID]:
    names = {
        "Bravo Logistics": org.east_rep1,
        "Alpha Foods": org.east_rep2,
        "Echo Bravo Textiles": org.east_rep1,
        "Delta Machines": org.north_rep,
        "Charlie Paper": org.east_rep2,
        "上海联华贸易有限公司": org.north_rep,
    }
    return {
        name: (await make_customer(database, owner, name=name)).id for name, owner in names.items()
    }


async def _list(client: httpx.AsyncClient, person: Person, **params: Any) -> list[str]:
    response = await client.get(f"{API}/customers", params=params, headers=person.headers)
    assert response.status_code == 200, response.text
    return [c["name"] for c in response.json()["items"]]


async def test_search_filters_and_sorting(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    await _named(database, org)
    boss = org.director
    assert await _list(client, boss, q="bravo", sort="name") == [
        "Bravo Logistics",
        "Echo Bravo Textiles",
    ]
    assert await _list(client, boss, q="RAVO LOG") == ["Bravo Logistics"]
    assert await _list(client, boss, q="联华") == ["上海联华贸易有限公司"]
    assert await _list(client, boss, q="zulu") == []
    assert await _list(client, boss, owner_id=str(org.east_rep2.id), sort="name") == [
        "Alpha Foods",
        "Charlie Paper",
    ]
    north = await _list(client, boss, region_id=str(org.north.id), sort="-name")
    assert north == ["上海联华贸易有限公司", "Delta Machines"]
    assert await _list(client, org.east_manager, q="delta") == []
    everyone = await _list(client, boss, sort="name")
    assert everyone == [
        "Alpha Foods",
        "Bravo Logistics",
        "Charlie Paper",
        "Delta Machines",
        "Echo Bravo Textiles",
        "上海联华贸易有限公司",
    ]
    assert await _list(client, boss, sort="-name") == everyone[::-1]
    assert await _list(client, boss, status="prospect", sort="name") == everyone
    assert await _list(client, boss, status="active") == []
    assert await _list(client, boss, classification="A") == []
    problem(
        await client.get(f"{API}/customers", params={"sort": "owner"}, headers=boss.headers),
        422,
        "validation_error",
    )


async def _walk(
    client: httpx.AsyncClient, person: Person, **params: Any
) -> list[tuple[list[dict[str, Any]], str | None]]:
    """Every page of a customer list, with the cursor each one gave."""
    pages: list[tuple[list[dict[str, Any]], str | None]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = await client.get(f"{API}/customers", params=query, headers=person.headers)
        assert answer.status_code == 200, answer.text
        cursor = answer.json()["next_cursor"]
        pages.append((answer.json()["items"], cursor))
        if cursor is None:
            return pages


@pytest.mark.parametrize("sort", ["name", "-name", "created_at", "-created_at"])
async def test_pages_walk_everything_once(
    client: httpx.AsyncClient, database: Database, sort: str
) -> None:
    org = await make_org(database)
    ids = await _named(database, org)
    whole = await client.get(
        f"{API}/customers", params={"sort": sort}, headers=org.director.headers
    )
    expected = [c["id"] for c in whole.json()["items"]]
    assert sorted(expected) == sorted(str(i) for i in ids.values())

    pages = await _walk(client, org.director, sort=sort, limit=2)
    assert all(len(items) <= 2 for items, _ in pages)
    seen = [c["id"] for items, _ in pages for c in items]
    assert seen == expected and len(pages) == 3


@pytest.mark.parametrize("sort", ["name", "-name", "created_at", "-updated_at"])
async def test_the_unfiltered_list_pages_as_a_filtered_one(
    client: httpx.AsyncClient, database: Database, sort: str
) -> None:
    """The list without filters runs a statement of its own (built once per role and order);
    it must answer exactly what the general one does when its filter keeps every row: the
    same rows, fields and derived statuses, the same pages and cursors, each cursor good for
    either. Two customers share their timestamps, so the id breaks that tie."""
    org = await make_org(database)
    await _named(database, org)
    tied = [await make_customer(database, org.east_rep1, name) for name in ("Tie A", "Tie B")]
    await make_customer(database, org.east_rep1, "Other Ltd")
    await make_customer(database, org.north_rep, "Not the East's Ltd")
    async with database.session() as session, session.begin():
        moment = utcnow() - timedelta(days=3)
        for customer in tied:
            row = await session.get_one(Customer, customer.id)
            row.created_at = row.updated_at = moment
        dormant = await session.get_one(Customer, tied[0].id)
        dormant.last_follow_up_at = utcnow() - timedelta(days=400)

    for person, every_row in (
        (org.east_manager, {"region_id": str(org.east.id)}),
        (org.east_rep1, {"owner_id": str(org.east_rep1.id)}),
    ):
        plain = await _walk(client, person, sort=sort, limit=2)
        filtered = await _walk(client, person, sort=sort, limit=2, **every_row)
        assert plain == filtered and len(plain) >= 2
        rows = [row for items, _ in plain for row in items]
        assert len({row["id"] for row in rows}) == len(rows)
        statuses = {row["id"]: row["status"] for row in rows}
        assert statuses[str(tied[0].id)] == "dormant" != statuses[str(tied[1].id)]
        # A cursor of one path continues the other.
        first_cursor = plain[0][1]
        assert first_cursor is not None
        crossed = await client.get(
            f"{API}/customers",
            params={"sort": sort, "limit": 2, "cursor": first_cursor, **every_row},
            headers=person.headers,
        )
        assert crossed.json()["items"] == plain[1][0]
        # An empty cursor is no cursor, on either path.
        for params in ({}, every_row):
            query = {"sort": sort, "limit": 2, "cursor": "", **params}
            empty = await client.get(f"{API}/customers", params=query, headers=person.headers)
            assert empty.status_code == 200, empty.text
            assert (empty.json()["items"], empty.json()["next_cursor"]) == plain[0]


async def test_a_search_pages_through_the_callers_scope_only(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    east = org.east_rep1
    made = [await make_customer(database, east, name=f"Dongfang East {n}") for n in range(5)]
    await make_customer(database, org.north_rep, name="Dongfang North")
    await make_customer(database, org.east_rep2, name="Other East")
    async with database.session() as session, session.begin():
        # Deleted customers are not found.
        (await session.get_one(Customer, made[2].id)).deleted_at = utcnow()
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"q": "dongfang", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await client.get(f"{API}/customers", params=params, headers=org.east_manager.headers)
        assert page.status_code == 200, page.text
        seen += [c["name"] for c in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    # Newest first, two a page, the north one and the deleted one left out.
    assert seen == [f"Dongfang East {n}" for n in (4, 3, 1, 0)]
    by_name = await _list(client, org.east_manager, q="dongfang", sort="name", limit=3)
    assert by_name == ["Dongfang East 0", "Dongfang East 1", "Dongfang East 3"]
    # A rep's search reads the rep's own book: theirs, and none of another rep's.
    assert await _list(client, east, q="dongfang", limit=3) == [
        "Dongfang East 4",
        "Dongfang East 3",
        "Dongfang East 1",
    ]
    assert await _list(client, org.east_rep2, q="dongfang") == []


@pytest.mark.parametrize("filtered", [False, True])
async def test_a_listed_customer_is_exactly_its_read_answer(
    client: httpx.AsyncClient, database: Database, filtered: bool
) -> None:
    """The list renders its page from column values (``app.answers``), not through the read
    schema: every item must still be, field for field and character for character, what
    reading that customer answers. One customer has every field set, overridden and dormant,
    with timestamps on a whole second (no fraction written); one has the fewest."""
    org = await make_org(database)
    response = await create(
        client,
        org.east_rep1,
        name='上海联华贸易有限公司 "Lianhua"',
        industry="Wholesale",
        address="1 Nanjing Road\nShanghai",
        phone="+86 21 5555 0101",
        email="buyer@lianhua.example.com",
        source="exhibition",
        needs="Cold-chain storage",
    )
    full = response.json()["id"]
    override = await client.put(
        f"{API}/customers/{full}/classification",
        json={"classification": "A", "reason": "Strategic"},
        headers=org.east_manager.headers,
    )
    assert override.status_code == 200, override.text
    sparse = (await make_customer(database, org.east_rep1, name="Plain Co")).id
    async with database.session() as session, session.begin():
        row = await session.get_one(Customer, uuid.UUID(full))
        row.created_at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
        row.last_follow_up_at = datetime(2025, 6, 1, 8, 0, 0, 250000, tzinfo=UTC)

    params = {"owner_id": str(org.east_rep1.id)} if filtered else None
    items = await listed_as_read(client, org.east_rep1, "customers", params)
    assert set(items) == {full, str(sparse)}
    assert items[full]["created_at"] == "2025-01-02T03:04:05Z"
    assert items[full]["last_follow_up_at"] == "2025-06-01T08:00:00.250000Z"
    assert items[full]["status"] == "dormant" and items[full]["classification"] == "A"
    assert items[str(sparse)]["address"] is None and items[str(sparse)]["classified_at"] is None
