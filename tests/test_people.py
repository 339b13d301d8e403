"""Users: who may list, read, create and change whom, and that passwords never leak."""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.db import Database
from tests.factories import Org, Person, make_customer, make_org, problem

USERS = "/api/v1/users"
PASSWORD = "a-fine-long-password"


def new_user(region_id: uuid.UUID | None, role: str = "rep", **extra: object) -> dict:
    body: dict[str, object] = {
        "email": f"new.{uuid.uuid4().hex[:8]}@example.com",
        "full_name": "New Person",
        "role": role,
        **extra,
    }
    if region_id is not None:
        body["region_id"] = str(region_id)
    return body


async def create(client: httpx.AsyncClient, actor: Person, body: dict) -> httpx.Response:
    return await client.post(USERS, json=body, headers=actor.headers)


async def patch(
    client: httpx.AsyncClient, actor: Person, target: uuid.UUID, body: dict
) -> httpx.Response:
    return await client.patch(f"{USERS}/{target}", json=body, headers=actor.headers)


def emails(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {u["email"] for u in response.json()["items"]}


def everyone(org: Org) -> list[Person]:
    return [
        org.director,
        org.east_manager,
        org.north_manager,
        org.east_rep1,
        org.east_rep2,
        org.north_rep,
    ]


# Reading ------------------------------------------------------------------------------------


async def test_director_lists_everyone(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    listed = await client.get(USERS, headers=org.director.headers)
    assert emails(listed) == {p.user.email for p in everyone(org)}
    item = listed.json()["items"][0]
    assert set(item) == {
        "id",
        "email",
        "full_name",
        "role",
        "region_id",
        "is_active",
        "phone",
        "version",
        "created_at",
        "updated_at",
    }
    reps = await client.get(
        USERS, params={"role": "rep", "region_id": str(org.east.id)}, headers=org.director.headers
    )
    assert emails(reps) == {org.east_rep1.user.email, org.east_rep2.user.email}
    found = await client.get(
        USERS, params={"q": org.north_rep.user.email.upper()}, headers=org.director.headers
    )
    assert emails(found) == {org.north_rep.user.email}


async def test_user_list_pages(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 4, "sort": "email"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(USERS, params=params, headers=org.director.headers)).json()
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(p.user.email for p in everyone(org))


async def test_manager_lists_only_their_region(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    mine = {org.east_manager.user.email, org.east_rep1.user.email, org.east_rep2.user.email}
    assert emails(await client.get(USERS, headers=org.east_manager.headers)) == mine
    other = await client.get(
        USERS, params={"region_id": str(org.north.id)}, headers=org.east_manager.headers
    )
    assert emails(other) == set()


async def test_manager_reads_own_region_only(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    read = await client.get(f"{USERS}/{org.east_rep1.id}", headers=org.east_manager.headers)
    assert read.status_code == 200 and read.headers["etag"] == '"1"'
    for outsider in (org.north_rep, org.north_manager, org.director):
        response = await client.get(f"{USERS}/{outsider.id}", headers=org.east_manager.headers)
        problem(response, 404, "not_found")
        problem(
            await patch(client, org.east_manager, outsider.id, {"is_active": False}),
            404,
            "not_found",
        )


async def test_reps_cannot_use_users(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    problem(await client.get(USERS, headers=rep.headers), 403, "forbidden")
    problem(await client.get(f"{USERS}/{rep.id}", headers=rep.headers), 403, "forbidden")
    problem(await create(client, rep, new_user(org.east.id)), 403, "forbidden")
    problem(await patch(client, rep, rep.id, {"full_name": "Me"}), 403, "forbidden")
    problem(await client.get(USERS), 401, "unauthorized")


# Creating -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["director", "regional_manager", "rep"])
async def test_director_creates_any_role(
    client: httpx.AsyncClient, database: Database, role: str
) -> None:
    org = await make_org(database)
    region = None if role == "director" else org.north.id
    body = new_user(region, role, email="Mixed.Case@Example.com", password=PASSWORD)
    response = await create(client, org.director, body)
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["role"] == role and user["email"] == "mixed.case@example.com"
    assert user["region_id"] == (str(region) if region else None)
    assert user["is_active"] is True and user["version"] == 1
    assert response.headers["location"] == f"{USERS}/{user['id']}"
    assert response.headers["etag"] == '"1"'
    assert PASSWORD not in response.text and "password" not in response.text

    login = await client.post(
        "/api/v1/auth/token", data={"username": "MIXED.case@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    # /auth/me is the same user, and more (tests/test_me.py).
    assert {key: value for key, value in me.json().items() if key in user} == user


async def test_manager_creates_reps_in_own_region(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    # Without a region the manager's own is meant.
    implicit = await create(client, org.east_manager, new_user(None))
    assert implicit.status_code == 201, implicit.text
    assert implicit.json()["region_id"] == str(org.east.id)
    explicit = await create(client, org.east_manager, new_user(org.east.id))
    assert explicit.status_code == 201, explicit.text

    forbidden = [
        new_user(org.north.id),
        new_user(org.east.id, "regional_manager"),
        new_user(None, "regional_manager"),
        new_user(None, "director"),
    ]
    for body in forbidden:
        problem(await create(client, org.east_manager, body), 403, "forbidden")
    listed = await client.get(USERS, headers=org.director.headers)
    assert len(listed.json()["items"]) == len(everyone(org)) + 2


async def test_duplicate_email_is_409(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    taken = org.east_rep1.user.email
    for email in (taken, taken.upper()):
        body = problem(
            await create(client, org.director, new_user(org.east.id, email=email)), 409, "conflict"
        )
        assert body["reason"] == "duplicate_email"


@pytest.mark.parametrize(
    ("role", "placement"),
    [
        ("rep", "none"),
        ("regional_manager", "none"),
        ("director", "east"),
        ("rep", "unknown"),
    ],
)
async def test_region_rules_on_create(
    client: httpx.AsyncClient, database: Database, role: str, placement: str
) -> None:
    org = await make_org(database)
    region = {"none": None, "east": org.east.id, "unknown": uuid.uuid4()}[placement]
    body = problem(
        await create(client, org.director, new_user(region, role)), 422, "validation_error"
    )
    assert body["errors"][0]["loc"] == ["body", "region_id"]


@pytest.mark.parametrize(
    "extra",
    [
        {"password": "tiny7"},
        {"email": "not-an-email"},
        {"role": "admin"},
        {"full_name": ""},
        {"version": 3},
        {"password_hash": "x"},
    ],
    ids=["short-password", "bad-email", "bad-role", "empty-name", "read-only", "hash"],
)
async def test_invalid_user_bodies_are_422(
    client: httpx.AsyncClient, database: Database, extra: dict
) -> None:
    org = await make_org(database)
    response = await create(client, org.director, new_user(org.east.id, **extra))
    problem(response, 422, "validation_error")
    assert "tiny7" not in response.text  # a rejected password is not echoed back


# Changing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "change"),
    [
        ("director", {"role": "rep", "region_id": "east"}),
        ("director", {"is_active": False}),
        ("east_manager", {"role": "director", "region_id": None}),
        ("east_manager", {"region_id": "north"}),
        ("east_manager", {"is_active": False}),
        ("east_manager", {"role": "regional_manager"}),
    ],
)
async def test_nobody_changes_own_role_region_or_active_flag(
    client: httpx.AsyncClient, database: Database, who: str, change: dict
) -> None:
    org = await make_org(database)
    me: Person = getattr(org, who)
    regions = {"east": str(org.east.id), "north": str(org.north.id)}
    body = {k: regions.get(v, v) if isinstance(v, str) else v for k, v in change.items()}
    problem(await patch(client, me, me.id, body), 403, "forbidden")
    read = await client.get("/api/v1/auth/me", headers=me.headers)
    assert read.json()["role"] == me.user.role and read.json()["version"] == 1

    # Their name and password are theirs to change.
    renamed = await patch(client, me, me.id, {"full_name": "Renamed", "password": PASSWORD})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["full_name"] == "Renamed"
    login = await client.post(
        "/api/v1/auth/token", data={"username": me.user.email, "password": PASSWORD}
    )
    assert login.status_code == 200


async def test_manager_may_deactivate_but_not_move_reps(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1.id
    for change in (
        {"role": "regional_manager"},
        {"role": "rep"},
        {"region_id": str(org.north.id)},
    ):
        problem(await patch(client, org.east_manager, rep, change), 403, "forbidden")

    deactivated = await patch(client, org.east_manager, rep, {"is_active": False})
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["is_active"] is False and deactivated.json()["version"] == 2
    inactive = await client.get(
        USERS, params={"is_active": "false"}, headers=org.east_manager.headers
    )
    assert emails(inactive) == {org.east_rep1.user.email}


async def test_director_moves_and_promotes(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    moved = await patch(client, org.director, org.east_rep2.id, {"region_id": str(org.north.id)})
    assert moved.status_code == 200, moved.text
    assert moved.json()["region_id"] == str(org.north.id)
    assert org.east_rep2.user.email not in emails(
        await client.get(USERS, headers=org.east_manager.headers)
    )

    promoted = await patch(client, org.director, org.east_rep1.id, {"role": "director"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["role"] == "director" and promoted.json()["region_id"] is None

    demoted = await patch(client, org.director, org.north_manager.id, {"role": "rep"})
    assert demoted.status_code == 200 and demoted.json()["region_id"] == str(org.north.id)
    # The role is read per request, not from the token: the demotion bites at once.
    problem(await client.get(USERS, headers=org.north_manager.headers), 403, "forbidden")
    unplaced = await patch(client, org.director, org.north_rep.id, {"region_id": None})
    assert problem(unplaced, 422, "validation_error")["errors"][0]["loc"] == ["body", "region_id"]


async def test_user_owning_customers_stays_in_region(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    await make_customer(database, org.east_rep1)
    body = problem(
        await patch(client, org.director, org.east_rep1.id, {"region_id": str(org.north.id)}),
        409,
        "conflict",
    )
    assert body["reason"] == "user_owns_customers"


@pytest.mark.parametrize(
    "change",
    [
        {"full_name": None},
        {"is_active": None},
        {"role": None},
        {"password": None},
        {"email": "x@example.com"},
        {"version": 9},
    ],
    ids=["null-name", "null-active", "null-role", "null-password", "email", "version"],
)
async def test_invalid_changes_are_422(
    client: httpx.AsyncClient, database: Database, change: dict
) -> None:
    org = await make_org(database)
    problem(await patch(client, org.director, org.east_rep1.id, change), 422, "validation_error")
    read = await client.get(f"{USERS}/{org.east_rep1.id}", headers=org.director.headers)
    assert read.json()["version"] == 1


async def test_stale_if_match_is_412(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    url = f"{USERS}/{org.east_rep1.id}"
    fresh = {**org.director.headers, "If-Match": '"1"'}
    first = await client.patch(url, json={"full_name": "One"}, headers=fresh)
    assert first.status_code == 200 and first.headers["etag"] == '"2"'
    stale = await client.patch(url, json={"full_name": "Two"}, headers=fresh)
    problem(stale, 412, "version_conflict")
    assert (await client.get(url, headers=org.director.headers)).json()["full_name"] == "One"


# Secrets, audit and events ------------------------------------------------------------------


async def test_passwords_never_leave_the_server(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    created = await create(client, org.director, new_user(org.east.id, password=PASSWORD))
    user_id = created.json()["id"]
    changed = await client.patch(
        f"{USERS}/{user_id}", json={"password": "another-password"}, headers=org.director.headers
    )
    assert changed.status_code == 200
    answers = [
        created,
        changed,
        await client.get(f"{USERS}/{user_id}", headers=org.director.headers),
        await client.get(USERS, headers=org.director.headers),
        await client.get("/api/v1/audit-log", headers=org.director.headers),
        await client.get("/api/v1/events", headers=org.director.headers),
    ]
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        for secret in (PASSWORD, "another-password", "password", "argon2"):
            assert secret not in answer.text, (answer.request.url, secret)


async def test_user_creation_is_audited_and_announced(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    created = await create(
        client, org.east_manager, new_user(org.east.id, password=PASSWORD, full_name="Ann Lee")
    )
    user = created.json()

    audit = await client.get(
        "/api/v1/audit-log",
        params={"entity_type": "users", "entity_id": user["id"]},
        headers=org.director.headers,
    )
    assert audit.status_code == 200, audit.text
    [entry] = audit.json()["items"]
    assert entry["action"] == "create" and entry["before"] is None
    assert entry["actor_id"] == str(org.east_manager.id)
    assert entry["region_id"] == str(org.east.id)
    assert entry["after"]["email"] == user["email"] and entry["after"]["full_name"] == "Ann Lee"
    assert "password_hash" not in entry["after"]

    feed = await client.get(
        "/api/v1/events", params={"type": "user.created"}, headers=org.director.headers
    )
    assert feed.status_code == 200, feed.text
    [event] = feed.json()["items"]
    assert event["entity_id"] == user["id"] and event["actor_id"] == str(org.east_manager.id)
    assert event["data"]["email"] == user["email"] and event["data"]["role"] == "rep"
    assert not {"password", "password_hash"} & event["data"].keys()
