"""Who may see and change which customers, contacts and follow-ups, route by route.

A rep sees the customers they own, a manager their region's, the director all. Outside that
scope a record does not exist (404); inside it, an action the role may not take is a 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db import Database
from app.models.customers import Contact, Customer, CustomerRead, FollowUp
from app.models.people import Role
from app.models.types import utcnow
from tests.factories import Org, Person, etag_of, make_customer, make_org, make_user, problem

API = "/api/v1"


@dataclass
class World:
    """Three customers (two reps of East, one of North), each with a contact and a follow-up,
    plus a soft-deleted East customer that nobody may see any more."""

    org: Org
    north_rep2: Person
    customers: dict[str, uuid.UUID]
    contacts: dict[str, uuid.UUID]
    follow_ups: dict[str, uuid.UUID]


OWNERS = {"rep1": "east_rep1", "rep2": "east_rep2", "north": "north_rep"}


async def make_world(client: httpx.AsyncClient, database: Database) -> World:
    org = await make_org(database)
    world = World(org, await make_user(database, Role.REP, org.north), {}, {}, {})
    for key, owner_name in OWNERS.items():
        owner = getattr(org, owner_name)
        customer = await make_customer(database, owner, name=f"Scope {key} Ltd")
        world.customers[key] = customer.id
        contact = await client.post(
            f"{API}/customers/{customer.id}/contacts",
            json={"name": f"Contact of {key}"},
            headers=owner.headers,
        )
        assert contact.status_code == 201, contact.text
        world.contacts[key] = uuid.UUID(contact.json()["id"])
        follow_up = await client.post(
            f"{API}/follow-ups",
            json={"customer_id": str(customer.id), "kind": "call", "summary": key},
            headers=owner.headers,
        )
        assert follow_up.status_code == 201, follow_up.text
        world.follow_ups[key] = uuid.UUID(follow_up.json()["id"])
    gone = await make_customer(database, org.east_rep1, name="Deleted East Ltd")
    await client.post(
        f"{API}/follow-ups",
        json={"customer_id": str(gone.id), "kind": "visit"},
        headers=org.east_rep1.headers,
    )
    deleted = await client.delete(f"{API}/customers/{gone.id}", headers=org.east_manager.headers)
    assert deleted.status_code == 204, deleted.text
    return world


async def fingerprint(database: Database, customer_id: uuid.UUID) -> dict[str, Any]:
    """Everything a failed request must leave as it was, read straight from the tables."""
    async with database.session(write=False) as s, s.begin():
        customer = await s.get_one(Customer, customer_id)
        contacts = (await s.execute(select(Contact.id, Contact.version))).all()
        follow_ups = (await s.execute(select(FollowUp.id, FollowUp.version))).all()
        return {
            "customer": (customer.version, customer.owner_id, customer.deleted_at),
            "contacts": sorted(contacts),
            "follow_ups": sorted(follow_ups),
        }


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    kind: str  # read | write | manage (manage: managers and the director only)
    ok: int
    body: dict[str, Any] | Callable[[World, str], dict[str, Any]] | None = None


def _assign_to(world: World, target: str) -> dict[str, Any]:
    # Someone of the customer's own region, so only scope can stand in the way.
    new_owner = {
        "rep1": world.org.east_rep2,
        "rep2": world.org.east_rep1,
        "north": world.north_rep2,
    }
    return {"owner_id": str(new_owner[target].id)}


ROUTES = [
    Route("customers_get", "GET", "/customers/{customer}", "read", 200),
    Route(
        "customers_update",
        "PATCH",
        "/customers/{customer}",
        "write",
        200,
        {"industry": "Textiles"},
    ),
    Route("customers_delete", "DELETE", "/customers/{customer}", "manage", 204),
    Route("customers_assign", "POST", "/customers/{customer}/assign", "manage", 200, _assign_to),
    Route(
        "customers_classify",
        "PUT",
        "/customers/{customer}/classification",
        "manage",
        200,
        {"classification": "B", "reason": "Large framework agreement"},
    ),
    Route("customers_unclassify", "DELETE", "/customers/{customer}/classification", "manage", 200),
    Route("contacts_list", "GET", "/customers/{customer}/contacts", "read", 200),
    Route(
        "contacts_create",
        "POST",
        "/customers/{customer}/contacts",
        "write",
        201,
        {"name": "Zhang San"},
    ),
    Route("contacts_get", "GET", "/contacts/{contact}", "read", 200),
    Route(
        "contacts_update",
        "PATCH",
        "/contacts/{contact}",
        "write",
        200,
        {"title": "Buyer"},
    ),
    Route("contacts_delete", "DELETE", "/contacts/{contact}", "write", 204),
    Route(
        "follow_ups_create",
        "POST",
        "/follow-ups",
        "write",
        201,
        lambda w, t: {"customer_id": str(w.customers[t]), "kind": "visit"},
    ),
    Route("follow_ups_get", "GET", "/follow-ups/{follow_up}", "read", 200),
    Route(
        "follow_ups_update",
        "PATCH",
        "/follow-ups/{follow_up}",
        "write",
        200,
        {"summary": "Discussed the renewal"},
    ),
    Route("follow_ups_delete", "DELETE", "/follow-ups/{follow_up}", "write", 204),
]

# (caller, whose customer, visible to the caller?)
CASES = [
    ("east_rep1", "rep1", True),
    ("east_rep1", "rep2", False),  # same region, another rep's customer
    ("east_rep1", "north", False),
    ("east_manager", "rep1", True),
    ("east_manager", "rep2", True),
    ("east_manager", "north", False),
    ("north_manager", "north", True),
    ("north_manager", "rep1", False),
    ("director", "rep2", True),
    ("director", "north", True),
]


def _expected(route: Route, caller_role: Role, visible: bool) -> int:
    if route.kind == "manage" and caller_role is Role.REP:
        # The role check answers before any row is read, for any id alike, so a 403 here
        # says nothing about whether the customer exists.
        return 403
    return route.ok if visible else 404


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
@pytest.mark.parametrize(("caller", "target", "visible"), CASES, ids=lambda v: str(v))
async def test_route_scope(
    client: httpx.AsyncClient,
    database: Database,
    route: Route,
    caller: str,
    target: str,
    visible: bool,
) -> None:
    world = await make_world(client, database)
    person = getattr(world.org, caller)
    path = API + route.path.format(
        customer=world.customers[target],
        contact=world.contacts[target],
        follow_up=world.follow_ups[target],
    )
    before = await fingerprint(database, world.customers[target])
    body = route.body(world, target) if callable(route.body) else route.body
    response = await client.request(route.method, path, json=body, headers=person.headers)

    expected = _expected(route, Role(person.user.role), visible)
    if expected >= 400:
        problem(response, expected, "forbidden" if expected == 403 else "not_found")
        assert await fingerprint(database, world.customers[target]) == before
    else:
        assert response.status_code == expected, response.text
        if route.method != "GET":
            assert await fingerprint(database, world.customers[target]) != before


VISIBLE = {
    "east_rep1": {"rep1"},
    "east_rep2": {"rep2"},
    "north_rep": {"north"},
    "east_manager": {"rep1", "rep2"},
    "north_manager": {"north"},
    "director": {"rep1", "rep2", "north"},
}


async def _ids(client: httpx.AsyncClient, path: str, person: Any, **params: Any) -> set[str]:
    response = await client.get(API + path, params=params, headers=person.headers)
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return {item["id"] for item in response.json()["items"]}


@pytest.mark.parametrize("caller", sorted(VISIBLE))
async def test_lists_hold_exactly_what_the_caller_may_read(
    client: httpx.AsyncClient, database: Database, caller: str
) -> None:
    world = await make_world(client, database)
    person = getattr(world.org, caller)
    keys = VISIBLE[caller]

    assert await _ids(client, "/customers", person) == {str(world.customers[k]) for k in keys}
    assert await _ids(client, "/follow-ups", person) == {str(world.follow_ups[k]) for k in keys}
    # Filters narrow the scope; they never widen it.
    for key in set(OWNERS) - keys:
        owner = getattr(world.org, OWNERS[key])
        assert await _ids(client, "/customers", person, owner_id=owner.id) == set()
        assert await _ids(client, "/follow-ups", person, owner_id=owner.id) == set()
        customer_id = world.customers[key]
        assert await _ids(client, "/follow-ups", person, customer_id=customer_id) == set()
    for region in (world.org.east, world.org.north):
        in_region = {k for k in keys if (k == "north") == (region is world.org.north)}
        expected = {str(world.customers[k]) for k in in_region}
        assert await _ids(client, "/customers", person, region_id=region.id) == expected


async def test_reassignment_within_region(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1, name="Moving Parts Ltd")
    response = await client.post(
        f"{API}/customers/{customer.id}/assign",
        json={"owner_id": str(org.east_rep2.id)},
        headers={**org.east_manager.headers, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["owner_id"], body["region_id"]) == (str(org.east_rep2.id), str(org.east.id))
    assert response.headers["etag"] == etag_of(CustomerRead, response) and body["version"] == 2

    problem(
        await client.get(f"{API}/customers/{customer.id}", headers=org.east_rep1.headers),
        404,
        "not_found",
    )
    mine = await client.get(f"{API}/customers/{customer.id}", headers=org.east_rep2.headers)
    assert mine.status_code == 200 and mine.json()["owner_id"] == str(org.east_rep2.id)

    feed = await client.get(
        f"{API}/events", params={"type": "customer.assigned"}, headers=org.east_rep2.headers
    )
    (event,) = feed.json()["items"]
    assert event["entity_id"] == str(customer.id)
    assert event["data"]["previous_owner_id"] == str(org.east_rep1.id)
    assert event["data"]["owner_id"] == str(org.east_rep2.id)


async def test_reassignment_rules(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1, name="Hard To Move Ltd")
    path = f"{API}/customers/{customer.id}/assign"

    async def assign(person: Any, owner_id: Any, **headers: str) -> httpx.Response:
        return await client.post(
            path, json={"owner_id": str(owner_id)}, headers={**person.headers, **headers}
        )

    before = await fingerprint(database, customer.id)
    problem(await assign(org.east_manager, org.north_rep.id), 403, "forbidden")
    problem(await assign(org.east_rep1, org.east_rep2.id), 403, "forbidden")
    problem(
        await assign(org.east_manager, org.east_rep2.id, **{"If-Match": '"7"'}),
        412,
        "version_conflict",
    )
    inactive = await _inactive_rep(database, org)
    for bad_owner in (inactive, org.director.id, uuid.uuid4()):
        body = problem(await assign(org.director, bad_owner), 422, "validation_error")
        assert body["errors"][0]["loc"] == ["body", "owner_id"]
    assert await fingerprint(database, customer.id) == before

    # The director may move a customer across regions: the region follows the new owner.
    moved = await assign(org.director, org.north_rep.id)
    assert moved.status_code == 200, moved.text
    assert moved.json()["region_id"] == str(org.north.id)
    gone = await client.get(f"{API}/customers/{customer.id}", headers=org.east_manager.headers)
    problem(gone, 404, "not_found")
    seen = await client.get(f"{API}/customers/{customer.id}", headers=org.north_manager.headers)
    assert seen.status_code == 200


async def _inactive_rep(database: Database, org: Org) -> uuid.UUID:
    person = await make_user(database, Role.REP, org.east, is_active=False)
    return person.id


async def test_events_reach_the_right_people(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    mine = await client.post(
        f"{API}/customers", json={"name": "Evented Co"}, headers=org.east_rep1.headers
    )
    x = mine.json()["id"]
    await client.patch(
        f"{API}/customers/{x}", json={"industry": "Food"}, headers=org.east_rep1.headers
    )
    logged = await client.post(
        f"{API}/follow-ups",
        json={"customer_id": x, "kind": "call", "occurred_at": utcnow().isoformat()},
        headers=org.east_rep1.headers,
    )
    # A customer the manager creates for rep2, gives to rep1, then deletes.
    theirs = await client.post(
        f"{API}/customers",
        json={"name": "Handed Over Co", "owner_id": str(org.east_rep2.id)},
        headers=org.east_manager.headers,
    )
    y = theirs.json()["id"]
    await client.post(
        f"{API}/customers/{y}/assign",
        json={"owner_id": str(org.east_rep1.id)},
        headers=org.east_manager.headers,
    )
    await client.delete(f"{API}/customers/{y}", headers=org.east_manager.headers)

    all_events = [
        ("customer.created", x),
        ("customer.updated", x),
        ("follow_up.created", logged.json()["id"]),
        ("customer.created", y),
        ("customer.assigned", y),
        ("customer.deleted", y),
    ]
    # Each event is scoped like its record was when it happened.
    expected = {
        "east_rep1": [e for e in all_events if e != ("customer.created", y)],
        "east_rep2": [("customer.created", y)],
        "north_rep": [],
        "east_manager": all_events,
        "north_manager": [],
        "director": all_events,
    }
    for name, events in expected.items():
        person = getattr(org, name)
        feed = await client.get(f"{API}/events", headers=person.headers)
        assert feed.status_code == 200, feed.text
        got = [(e["type"], e["entity_id"]) for e in feed.json()["items"]]
        assert [g for g in got if g[0].startswith(("customer.", "follow_up."))] == events, name
