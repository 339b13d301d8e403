"""Contract numbers HT-YYYY-NNNNN: no duplicates and no gaps, under concurrent creation and
after a creation that rolled back; one contract per opportunity, however many try."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.db import Database
from app.models.contracts import ContractCreate
from app.services import contracts as contract_service
from app.services import department
from tests.contract_helpers import API, make_won_opportunity
from tests.factories import make_org, problem


async def test_concurrent_creations_get_consecutive_distinct_numbers(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    reps = [org.east_rep1, org.east_rep2, org.north_rep]
    opportunities = [
        (rep, await make_won_opportunity(database, rep)) for rep in reps * 3 + [org.east_rep1]
    ]
    answers = await asyncio.gather(
        *(
            client.post(
                f"{API}/contracts", headers=rep.headers, json={"opportunity_id": str(opp.id)}
            )
            for rep, opp in opportunities
        )
    )
    assert [a.status_code for a in answers] == [201] * 10, [a.text for a in answers]
    year = department.today().year
    numbers = sorted(a.json()["number"] for a in answers)
    assert numbers == [f"HT-{year}-{n:05d}" for n in range(1, 11)]


async def test_a_creation_that_rolls_back_leaves_no_gap(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    abandoned, kept = (
        await make_won_opportunity(database, rep),
        await make_won_opportunity(database, rep),
    )

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon):
        async with database.session() as session, session.begin():
            drafted = await contract_service.create_contract(
                session, rep.actor, ContractCreate(opportunity_id=abandoned.id)
            )
            assert drafted.number.endswith("-00001")
            raise Abandon  # e.g. a later step of the request failed: everything rolls back

    created = await client.post(
        f"{API}/contracts", headers=rep.headers, json={"opportunity_id": str(kept.id)}
    )
    assert created.json()["number"] == f"HT-{department.today().year}-00001"
    again = await client.post(
        f"{API}/contracts", headers=rep.headers, json={"opportunity_id": str(abandoned.id)}
    )
    assert again.json()["number"] == f"HT-{department.today().year}-00002"


async def test_concurrent_creations_for_one_opportunity_make_one_contract(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    opp = await make_won_opportunity(database, org.east_rep1)
    callers = [org.east_rep1, org.east_manager, org.director] * 2
    answers = await asyncio.gather(
        *(
            client.post(
                f"{API}/contracts", headers=who.headers, json={"opportunity_id": str(opp.id)}
            )
            for who in callers
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 5, [a.text for a in answers]
    winner = next(a for a in answers if a.status_code == 201).json()
    for answer in answers:
        if answer.status_code == 409:
            body = problem(answer, 409, "conflict")
            assert (body["reason"], body["existing_id"]) == ("contract_exists", winner["id"])
    listed = await client.get(f"{API}/contracts", headers=org.director.headers)
    assert [c["number"] for c in listed.json()["items"]] == [winner["number"]]
