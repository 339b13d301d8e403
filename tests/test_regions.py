"""Regions: everyone reads them, only the director manages them."""

from __future__ import annotations

import httpx
import pytest

from app.db import Database
from app.models.people import Role
from tests.factories import make_org, make_region, make_user, problem

REGIONS = "/api/v1/regions"


async def test_any_user_lists_and_reads_regions(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    for person in (org.director, org.east_manager, org.north_rep):
        listed = await client.get(REGIONS, headers=person.headers)
        assert listed.status_code == 200, listed.text
        assert [r["name"] for r in listed.json()["items"]] == ["East", "North"]
        assert listed.json()["next_cursor"] is None

        # A rep of the North region still reads the East region: regions are not scoped.
        read = await client.get(f"{REGIONS}/{org.east.id}", headers=person.headers)
        assert read.status_code == 200, read.text
        assert read.json()["name"] == "East"
        assert read.headers["etag"] == '"1"'


async def test_regions_need_a_token(client: httpx.AsyncClient, database: Database) -> None:
    region = await make_region(database)
    problem(await client.get(REGIONS), 401, "unauthorized")
    problem(await client.get(f"{REGIONS}/{region.id}"), 401, "unauthorized")
    problem(await client.post(REGIONS, json={"name": "West"}), 401, "unauthorized")


async def test_unknown_region_is_404(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    response = await client.get(
        f"{REGIONS}/00000000-0000-0000-0000-000000000000", headers=org.director.headers
    )
    problem(response, 404, "not_found")


async def test_region_list_pages(client: httpx.AsyncClient, database: Database) -> None:
    director = await make_user(database, Role.DIRECTOR)
    for name in ("Alpha", "Bravo", "Charlie", "Delta", "Echo"):
        await make_region(database, name)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "sort": "-name"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(REGIONS, params=params, headers=director.headers)).json()
        seen += [r["name"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["Echo", "Delta", "Charlie", "Bravo", "Alpha"]


async def test_director_manages_regions(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    created = await client.post(REGIONS, json={"name": " West "}, headers=org.director.headers)
    assert created.status_code == 201, created.text
    region = created.json()
    assert region["name"] == "West" and region["version"] == 1
    assert created.headers["location"] == f"{REGIONS}/{region['id']}"
    assert created.headers["etag"] == '"1"'

    renamed = await client.patch(
        f"{REGIONS}/{region['id']}",
        json={"name": "Far West"},
        headers={**org.director.headers, "If-Match": '"1"'},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Far West" and renamed.json()["version"] == 2
    assert renamed.headers["etag"] == '"2"'

    deleted = await client.delete(f"{REGIONS}/{region['id']}", headers=org.director.headers)
    assert deleted.status_code == 204
    problem(
        await client.get(f"{REGIONS}/{region['id']}", headers=org.director.headers),
        404,
        "not_found",
    )

    types = [
        e["type"]
        for e in (await client.get("/api/v1/events", headers=org.director.headers)).json()["items"]
    ]
    assert types == ["region.created", "region.updated", "region.deleted"]


@pytest.mark.parametrize("who", ["east_manager", "east_rep1"])
async def test_only_the_director_manages_regions(
    client: httpx.AsyncClient, database: Database, who: str
) -> None:
    org = await make_org(database)
    headers = getattr(org, who).headers
    problem(await client.post(REGIONS, json={"name": "West"}, headers=headers), 403, "forbidden")
    problem(
        await client.patch(f"{REGIONS}/{org.east.id}", json={"name": "Orient"}, headers=headers),
        403,
        "forbidden",
    )
    empty = await make_region(database, "Empty")
    problem(await client.delete(f"{REGIONS}/{empty.id}", headers=headers), 403, "forbidden")
    names = [r["name"] for r in (await client.get(REGIONS, headers=headers)).json()["items"]]
    assert names == ["East", "Empty", "North"]


async def test_region_names_are_unique(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    body = problem(
        await client.post(REGIONS, json={"name": "east"}, headers=org.director.headers),
        409,
        "conflict",
    )
    assert body["reason"] == "duplicate_region"
    body = problem(
        await client.patch(
            f"{REGIONS}/{org.north.id}", json={"name": "EAST"}, headers=org.director.headers
        ),
        409,
        "conflict",
    )
    assert body["reason"] == "duplicate_region"
    # Renaming a region to its own name in another case is no clash with itself.
    same = await client.patch(
        f"{REGIONS}/{org.north.id}", json={"name": "NORTH"}, headers=org.director.headers
    )
    assert same.status_code == 200 and same.json()["name"] == "NORTH"


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "   "}, {"name": None}, {"name": "x" * 101}, {"id": "nope"}],
    ids=["missing", "empty", "blank", "null", "too-long", "unknown-field"],
)
async def test_invalid_region_bodies_are_422(
    client: httpx.AsyncClient, database: Database, body: dict
) -> None:
    org = await make_org(database)
    problem(
        await client.post(REGIONS, json=body, headers=org.director.headers), 422, "validation_error"
    )
    if body:
        response = await client.patch(
            f"{REGIONS}/{org.east.id}", json=body, headers=org.director.headers
        )
        problem(response, 422, "validation_error")
    read = await client.get(f"{REGIONS}/{org.east.id}", headers=org.director.headers)
    assert read.json()["name"] == "East" and read.json()["version"] == 1


async def test_region_in_use_cannot_be_deleted(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    body = problem(
        await client.delete(f"{REGIONS}/{org.east.id}", headers=org.director.headers),
        409,
        "conflict",
    )
    assert body["reason"] == "region_in_use"
    assert (await client.get(f"{REGIONS}/{org.east.id}", headers=org.director.headers)).is_success


async def test_stale_if_match_is_412(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    empty = await make_region(database, "Empty")
    url = f"{REGIONS}/{empty.id}"
    first = await client.patch(
        url, json={"name": "Spare"}, headers={**org.director.headers, "If-Match": '"1"'}
    )
    assert first.status_code == 200, first.text

    stale = {**org.director.headers, "If-Match": '"1"'}
    problem(await client.patch(url, json={"name": "Lost"}, headers=stale), 412, "version_conflict")
    problem(await client.delete(url, headers=stale), 412, "version_conflict")
    # Not an entity tag at all: a malformed request, not a stale one.
    bogus = {**org.director.headers, "If-Match": "not-a-version"}
    problem(await client.patch(url, json={"name": "Lost"}, headers=bogus), 400, "bad_request")

    read = await client.get(url, headers=org.director.headers)
    assert read.json()["name"] == "Spare" and read.headers["etag"] == '"2"'
    deleted = await client.delete(url, headers={**org.director.headers, "If-Match": '"2"'})
    assert deleted.status_code == 204
