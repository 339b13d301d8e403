"""Contacts: the people at a customer, exactly one of them primary."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db import Database
from app.models.customers import Contact
from tests.factories import Person, make_customer, make_org, problem

API = "/api/v1"


async def add(
    client: httpx.AsyncClient, person: Person, customer_id: uuid.UUID, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/customers/{customer_id}/contacts", json=fields, headers=person.headers
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/api/v1/contacts/{response.json()['id']}"
    return response.json()


async def primaries(database: Database, customer_id: uuid.UUID) -> list[str]:
    """Names of the primary contacts, straight from the table."""
    async with database.session(write=False) as s, s.begin():
        rows = await s.scalars(
            select(Contact.name).where(Contact.customer_id == customer_id, Contact.is_primary)
        )
        return list(rows.all())


async def test_create_read_and_list(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    fields = {
        "name": "Wang Fang",
        "title": "Purchasing manager",
        "phone": "+86 21 5555 0102",
        "email": "wang.fang@example.com",
    }
    created = await add(client, org.east_rep1, customer.id, **fields)
    assert {k: created[k] for k in fields} == fields
    assert created["customer_id"] == str(customer.id) and created["version"] == 1

    got = await client.get(f"{API}/contacts/{created['id']}", headers=org.east_rep1.headers)
    assert got.status_code == 200 and got.json() == created
    assert got.headers["etag"] == '"1"'
    second = await add(client, org.east_manager, customer.id, name="Li Lei")
    listed = await client.get(
        f"{API}/customers/{customer.id}/contacts", headers=org.east_rep1.headers
    )
    assert [c["id"] for c in listed.json()["items"]] == [created["id"], second["id"]]
    by_name = await client.get(
        f"{API}/customers/{customer.id}/contacts",
        params={"sort": "-name"},
        headers=org.east_rep1.headers,
    )
    assert [c["name"] for c in by_name.json()["items"]] == ["Wang Fang", "Li Lei"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "X", "email": "not-an-email"},
        {"name": "X", "phone": "call me"},
        {"name": "X", "customer_id": str(uuid.uuid4())},
        {"name": "X", "id": str(uuid.uuid4())},
    ],
)
async def test_create_refuses_bad_fields(
    client: httpx.AsyncClient, database: Database, body: dict[str, Any]
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    response = await client.post(
        f"{API}/customers/{customer.id}/contacts", json=body, headers=org.east_rep1.headers
    )
    problem(response, 422, "validation_error")
    assert await primaries(database, customer.id) == []


async def test_exactly_one_primary(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    rep = org.east_rep1
    first = await add(client, rep, customer.id, name="First", is_primary=False)
    assert first["is_primary"] is True  # the first contact is the primary one
    second = await add(client, rep, customer.id, name="Second")
    assert second["is_primary"] is False
    assert await primaries(database, customer.id) == ["First"]

    third = await add(client, rep, customer.id, name="Third", is_primary=True)
    assert third["is_primary"] is True
    assert await primaries(database, customer.id) == ["Third"]

    promoted = await client.patch(
        f"{API}/contacts/{second['id']}", json={"is_primary": True}, headers=rep.headers
    )
    assert promoted.status_code == 200 and promoted.json()["is_primary"] is True
    assert await primaries(database, customer.id) == ["Second"]

    # Unsetting the primary would leave none: name the new primary instead.
    response = await client.patch(
        f"{API}/contacts/{second['id']}", json={"is_primary": False}, headers=rep.headers
    )
    problem(response, 422, "validation_error")
    assert await primaries(database, customer.id) == ["Second"]


async def test_deleting_the_primary_promotes_another(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    rep = org.east_rep1
    first = await add(client, rep, customer.id, name="First")
    second = await add(client, rep, customer.id, name="Second")
    third = await add(client, rep, customer.id, name="Third")

    gone = await client.delete(f"{API}/contacts/{third['id']}", headers=rep.headers)
    assert gone.status_code == 204
    assert await primaries(database, customer.id) == ["First"]

    stale = await client.delete(
        f"{API}/contacts/{first['id']}", headers={**rep.headers, "If-Match": '"5"'}
    )
    problem(stale, 412, "version_conflict")
    gone = await client.delete(f"{API}/contacts/{first['id']}", headers=rep.headers)
    assert gone.status_code == 204
    problem(
        await client.get(f"{API}/contacts/{first['id']}", headers=rep.headers), 404, "not_found"
    )
    assert await primaries(database, customer.id) == ["Second"]

    await client.delete(f"{API}/contacts/{second['id']}", headers=rep.headers)
    assert await primaries(database, customer.id) == []
    again = await add(client, rep, customer.id, name="Fresh start")
    assert again["is_primary"] is True


@pytest.mark.parametrize(
    "change",
    [
        {"customer_id": "other"},
        {"id": str(uuid.uuid4())},
        {"version": 7},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"nickname": "Boss"},
        {"name": None},
        {"is_primary": None},
        {"email": "nope"},
    ],
)
async def test_patch_refuses_bad_and_read_only_fields(
    client: httpx.AsyncClient, database: Database, change: dict[str, Any]
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    other = await make_customer(database, org.east_rep1)
    if change.get("customer_id") == "other":
        change = {"customer_id": str(other.id)}
    contact = await add(client, org.east_rep1, customer.id, name="Steady")
    path = f"{API}/contacts/{contact['id']}"
    response = await client.patch(
        path, json={"title": "Changed", **change}, headers=org.east_rep1.headers
    )
    problem(response, 422, "validation_error")
    after = await client.get(path, headers=org.east_rep1.headers)
    assert after.json() == contact


async def test_patch_changes_fields(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    contact = await add(client, org.east_rep1, customer.id, name="Before", email="a@example.com")
    path = f"{API}/contacts/{contact['id']}"
    stale = await client.patch(
        path, json={"name": "After"}, headers={**org.east_rep1.headers, "If-Match": '"3"'}
    )
    problem(stale, 412, "version_conflict")
    response = await client.patch(
        path,
        json={"name": "After", "email": None, "title": "CFO"},
        headers={**org.east_rep1.headers, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["email"], body["title"], body["version"]) == (
        "After",
        None,
        "CFO",
        2,
    )
    assert response.headers["etag"] == '"2"'


async def test_contacts_of_a_deleted_customer_vanish(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    contact = await add(client, org.east_rep1, customer.id, name="Orphan")
    await client.delete(f"{API}/customers/{customer.id}", headers=org.east_manager.headers)
    for person in (org.east_rep1, org.director):
        headers = person.headers
        problem(
            await client.get(f"{API}/contacts/{contact['id']}", headers=headers), 404, "not_found"
        )
        listed = await client.get(f"{API}/customers/{customer.id}/contacts", headers=headers)
        problem(listed, 404, "not_found")
        added = await client.post(
            f"{API}/customers/{customer.id}/contacts", json={"name": "Late"}, headers=headers
        )
        problem(added, 404, "not_found")


async def test_contact_events_follow_the_customer_scope(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    contact = await add(client, org.east_rep1, customer.id, name="Evented")
    await client.patch(
        f"{API}/contacts/{contact['id']}", json={"title": "CEO"}, headers=org.east_rep1.headers
    )
    await client.delete(f"{API}/contacts/{contact['id']}", headers=org.east_rep1.headers)
    expected = ["contact.created", "contact.updated", "contact.deleted"]
    for person, sees in [(org.east_rep1, True), (org.east_rep2, False), (org.north_manager, False)]:
        feed = await client.get(f"{API}/events", params={"type": expected}, headers=person.headers)
        items = feed.json()["items"]
        assert [e["type"] for e in items] == (expected if sees else [])
        assert all(e["entity_id"] == contact["id"] for e in items)
