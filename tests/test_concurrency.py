"""Versions, ETags and If-Match: of two writers who read the same version only one wins."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from app.db import Database
from app.models.customers import Customer, CustomerRead
from app.models.platform import AuditEntry, Event
from tests.factories import Org, etag_of, make_customer, make_org, problem

CUSTOMERS = "/api/v1/customers"


@pytest.fixture
async def org(database: Database) -> Org:
    return await make_org(database)


@pytest.fixture
async def customer(database: Database, org: Org) -> Customer:
    return await make_customer(database, org.east_rep1, name="Original Co")


async def stored(database: Database, customer_id: uuid.UUID) -> Customer:
    async with database.session(write=False) as session:
        row = await session.get(Customer, customer_id)
        assert row is not None
        return row


async def updates_recorded(database: Database, customer_id: uuid.UUID) -> tuple[int, int]:
    """(customer.updated events, audit 'update' entries) for this customer."""
    async with database.session(write=False) as session:
        events = await session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.type == "customer.updated", Event.entity_id == customer_id)
        )
        audits = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "update", AuditEntry.entity_id == customer_id)
        )
    return int(events or 0), int(audits or 0)


async def test_get_carries_the_version_as_etag(
    client: httpx.AsyncClient, org: Org, customer: Customer
) -> None:
    response = await client.get(f"{CUSTOMERS}/{customer.id}", headers=org.east_rep1.headers)
    assert response.headers["etag"] == etag_of(CustomerRead, response)
    assert response.json()["version"] == 1
    assert response.json()["version"] == 1


async def test_matching_if_match_updates_and_bumps_the_version(
    client: httpx.AsyncClient, database: Database, org: Org, customer: Customer
) -> None:
    url = f"{CUSTOMERS}/{customer.id}"
    headers = {**org.east_rep1.headers, "If-Match": '"1"'}
    first = await client.patch(url, json={"industry": "Steel"}, headers=headers)
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == etag_of(CustomerRead, first) and first.json()["version"] == 2
    # The ETag just received is the precondition of the next change.
    headers["If-Match"] = first.headers["etag"]
    second = await client.patch(url, json={"industry": "Glass"}, headers=headers)
    assert second.headers["etag"] == etag_of(CustomerRead, second)
    assert second.json()["version"] == 3
    row = await stored(database, customer.id)
    assert (row.industry, row.version) == ("Glass", 3)
    read = await client.get(url, headers=org.east_rep1.headers)
    assert read.headers["etag"] == second.headers["etag"]


@pytest.mark.parametrize(
    "if_match",
    ['W/"1"', "*", " * ", "1", '"1"', '"1-0a1b2c3d"', 'W/"1", ', '"x", "1"'],
)
async def test_accepted_if_match_forms(
    client: httpx.AsyncClient, database: Database, org: Org, customer: Customer, if_match: str
) -> None:
    response = await client.patch(
        f"{CUSTOMERS}/{customer.id}",
        json={"industry": "Steel"},
        headers={**org.east_rep1.headers, "If-Match": if_match},
    )
    assert response.status_code == 200, response.text
    assert (await stored(database, customer.id)).version == 2


# Well-formed entity tags (or lists of them) that name no current version of ours.
@pytest.mark.parametrize(
    "if_match",
    ['"2"', '"0"', 'W/"7"', '"999999999999"', '"v1"', '""', '"2", W/"3"', '"a,b"'],
)
async def test_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, database: Database, org: Org, customer: Customer, if_match: str
) -> None:
    response = await client.patch(
        f"{CUSTOMERS}/{customer.id}",
        json={"name": "Changed Co"},
        headers={**org.east_rep1.headers, "If-Match": if_match},
    )
    problem(response, 412, "version_conflict")
    row = await stored(database, customer.id)
    assert (row.name, row.version) == ("Original Co", 1)
    assert await updates_recorded(database, customer.id) == (0, 0)


# Not an entity tag at all: a malformed request, whatever the version.
@pytest.mark.parametrize(
    "if_match",
    ["abc", "garbage", '"1', '1"', "W/1", '"1" "2"', "x" * 100, " ", ",", '"1";'],
)
async def test_garbage_if_match_is_400_and_changes_nothing(
    client: httpx.AsyncClient, database: Database, org: Org, customer: Customer, if_match: str
) -> None:
    url = f"{CUSTOMERS}/{customer.id}"
    rep = {**org.east_rep1.headers, "If-Match": if_match}
    problem(await client.patch(url, json={"name": "Changed Co"}, headers=rep), 400, "bad_request")
    manager = {**org.east_manager.headers, "If-Match": if_match}
    problem(await client.delete(url, headers=manager), 400, "bad_request")
    row = await stored(database, customer.id)
    assert (row.name, row.version, row.deleted_at) == ("Original Co", 1, None)
    assert await updates_recorded(database, customer.id) == (0, 0)


async def test_stale_if_match_after_someone_elses_change(
    client: httpx.AsyncClient, database: Database, org: Org, customer: Customer
) -> None:
    url = f"{CUSTOMERS}/{customer.id}"
    seen = (await client.get(url, headers=org.east_rep1.headers)).headers["etag"]
    manager = await client.patch(url, json={"industry": "Steel"}, headers=org.east_manager.headers)
    assert manager.status_code == 200
    rep = await client.patch(
        url, json={"industry": "Glass"}, headers={**org.east_rep1.headers, "If-Match": seen}
    )
    problem(rep, 412, "version_conflict")
    row = await stored(database, customer.id)
    assert (row.industry, row.version) == ("Steel", 2)


async def test_stale_if_match_on_delete_keeps_the_customer(
    client: httpx.AsyncClient, database: Database, org: Org, customer: Customer
) -> None:
    url = f"{CUSTOMERS}/{customer.id}"
    await client.patch(url, json={"industry": "Steel"}, headers=org.east_rep1.headers)
    stale = await client.delete(url, headers={**org.east_manager.headers, "If-Match": '"1"'})
    problem(stale, 412, "version_conflict")
    assert (await stored(database, customer.id)).deleted_at is None
    fresh = await client.delete(url, headers={**org.east_manager.headers, "If-Match": '"2"'})
    assert fresh.status_code == 204
    assert (await stored(database, customer.id)).deleted_at is not None


async def test_concurrent_patches_with_one_if_match_let_one_win(
    client: httpx.AsyncClient, database: Database, org: Org, customer: Customer
) -> None:
    url = f"{CUSTOMERS}/{customer.id}"
    names = ["Winner A Co", "Winner B Co"]
    answers = await asyncio.gather(
        *(
            client.patch(
                url, json={"name": name}, headers={**org.east_rep1.headers, "If-Match": '"1"'}
            )
            for name in names
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 412], [a.text for a in answers]
    won = next(a for a in answers if a.status_code == 200)
    lost = next(a for a in answers if a.status_code == 412)
    problem(lost, 412, "version_conflict")
    row = await stored(database, customer.id)
    assert row.name == won.json()["name"] and row.version == 2
    assert won.headers["etag"] == etag_of(CustomerRead, won) and won.json()["version"] == 2
    # The loser left no trace: one change, one event, one audit entry.
    assert await updates_recorded(database, customer.id) == (1, 1)


async def test_concurrent_patches_without_if_match_do_not_corrupt(
    client: httpx.AsyncClient, database: Database, org: Org, customer: Customer
) -> None:
    url = f"{CUSTOMERS}/{customer.id}"
    changes = [{"industry": "Steel", "address": "1 Steel Rd"}, {"industry": "Glass"}]
    answers = await asyncio.gather(
        *(client.patch(url, json=body, headers=org.east_rep1.headers) for body in changes)
    )
    won = [a for a in answers if a.status_code == 200]
    for answer in answers:
        if answer.status_code != 200:
            problem(answer, 412, "version_conflict")
    assert won, [a.text for a in answers]
    row = await stored(database, customer.id)
    # Every success is one version and one recorded change; no update is lost silently.
    assert row.version == 1 + len(won)
    assert await updates_recorded(database, customer.id) == (len(won), len(won))
    latest = max(won, key=lambda a: a.json()["version"]).json()
    assert (row.industry, row.address) == (latest["industry"], latest["address"])
    assert latest["version"] == row.version


async def test_many_concurrent_writers_each_win_once(
    client: httpx.AsyncClient, database: Database, org: Org, customer: Customer
) -> None:
    url = f"{CUSTOMERS}/{customer.id}"
    answers = await asyncio.gather(
        *(
            client.patch(url, json={"needs": f"need {i}"}, headers=org.east_rep1.headers)
            for i in range(6)
        )
    )
    won = [a for a in answers if a.status_code == 200]
    assert all(a.status_code in (200, 412) for a in answers), [a.text for a in answers]
    # The versions handed out are distinct: no two writers both claim the same step.
    assert len({a.json()["version"] for a in won}) == len(won)
    row = await stored(database, customer.id)
    assert row.version == 1 + len(won)
    assert row.needs == max(won, key=lambda a: a.json()["version"]).json()["needs"]
