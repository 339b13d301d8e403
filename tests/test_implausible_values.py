"""Values no real record has are refused with a 422 (or 404) naming them, and change
nothing: a fractional count target, a score on a visit not yet made, a leaderboard of a
region that does not exist, a new record's planned date in the past."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from app.db import Database
from app.models.contracts import Contract, ContractStatus, Delivery, Installment
from app.models.customers import FollowUp
from app.models.performance import Target
from app.models.pipeline import Opportunity
from app.services import department
from tests.contract_helpers import make_contract, make_won_opportunity
from tests.factories import make_customer, make_org, problem

API = "/api/v1"


async def _count(database: Database, model: type) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_count_target_is_a_whole_number(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    body = {"period": "2027-Q1", "scope": "company", "metric": "new_customers", "value": "2.5"}
    refused = await client.post(f"{API}/targets", json=body, headers=org.director.headers)
    errors = problem(refused, 422, "validation_error")["errors"]
    assert [e["loc"] for e in errors] == [["body", "value"]]
    assert await _count(database, Target) == 0

    body["value"] = "3.00"
    created = await client.post(f"{API}/targets", json=body, headers=org.director.headers)
    assert created.status_code == 201, created.text
    path = f"{API}/targets/{created.json()['id']}"
    changed = await client.patch(path, json={"value": "3.01"}, headers=org.director.headers)
    assert problem(changed, 422, "validation_error")["errors"][0]["loc"] == ["body", "value"]
    assert (await client.get(path, headers=org.director.headers)).json()["value"] == "3.00"
    # Money targets keep their cents.
    body.update(metric="signed_revenue", value="2.50")
    money = await client.post(f"{API}/targets", json=body, headers=org.director.headers)
    assert money.status_code == 201, money.text


async def test_a_planned_return_visit_has_no_satisfaction(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    customer = await make_customer(database, rep)
    planned = {
        "customer_id": str(customer.id),
        "kind": "return_visit",
        "status": "planned",
        "due_at": "2030-01-07T02:00:00Z",
    }
    refused = await client.post(
        f"{API}/follow-ups", json={**planned, "satisfaction": 4}, headers=rep.headers
    )
    errors = problem(refused, 422, "validation_error")["errors"]
    assert [e["loc"] for e in errors] == [["body", "satisfaction"]]
    assert await _count(database, FollowUp) == 0

    done = await client.post(
        f"{API}/follow-ups",
        json={"customer_id": str(customer.id), "kind": "return_visit", "satisfaction": 4},
        headers=rep.headers,
    )
    assert done.status_code == 201, done.text
    path = f"{API}/follow-ups/{done.json()['id']}"
    back = await client.patch(
        path, json={"status": "planned", "due_at": "2030-01-07T02:00:00Z"}, headers=rep.headers
    )
    assert problem(back, 422, "validation_error")["errors"][0]["loc"] == ["body", "satisfaction"]
    assert (await client.get(path, headers=rep.headers)).json()["status"] == "done"


async def test_the_leaderboard_of_an_unknown_region_is_not_found(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    board = f"{API}/performance/leaderboard"
    unknown = await client.get(
        board, params={"region_id": str(uuid.uuid4())}, headers=org.director.headers
    )
    problem(unknown, 404, "not_found")
    known = await client.get(
        board, params={"region_id": str(org.east.id)}, headers=org.director.headers
    )
    assert known.status_code == 200, known.text
    assert len(known.json()["items"]) == 2


async def test_dates_a_new_record_plans_are_not_in_the_past(
    client: httpx.AsyncClient, database: Database
) -> None:
    """Expected close, contract delivery, installment due and planned delivery dates are
    today or later in the department's time zone (UTC+8 by default) when created."""
    org = await make_org(database)
    rep = org.east_rep1
    today = department.today()
    yesterday, past = str(today - timedelta(days=1)), "2019-03-01"

    customer = await make_customer(database, rep)
    for close in (yesterday, past):
        body = {"customer_id": str(customer.id), "title": "Deal", "expected_close_date": close}
        refused = await client.post(f"{API}/opportunities", json=body, headers=rep.headers)
        assert _locs(refused) == [["body", "expected_close_date"]]
    assert await _count(database, Opportunity) == 0
    body = {"customer_id": str(customer.id), "title": "Deal", "expected_close_date": str(today)}
    created = await client.post(f"{API}/opportunities", json=body, headers=rep.headers)
    assert created.status_code == 201, created.text

    opp = await make_won_opportunity(database, rep)
    body = {"opportunity_id": str(opp.id), "delivery_date": yesterday}
    refused = await client.post(f"{API}/contracts", json=body, headers=rep.headers)
    assert _locs(refused) == [["body", "delivery_date"]]
    assert await _count(database, Contract) == 0

    contract = await make_contract(database, rep, plan=False)
    installments = f"{API}/contracts/{contract.id}/installments"
    one = {"due_date": yesterday, "amount": "1.00"}
    assert _locs(await client.post(installments, json=one, headers=rep.headers)) == [
        ["body", "due_date"]
    ]
    plan = {"installments": [{"due_date": str(today), "amount": "1.00"}, one]}
    assert _locs(await client.put(installments, json=plan, headers=rep.headers)) == [
        ["body", "installments", 1, "due_date"]
    ]
    assert await _count(database, Installment) == 0

    signed = await make_contract(database, rep, ContractStatus.SIGNED)
    deliveries = f"{API}/contracts/{signed.id}/deliveries"
    body = {"description": "Pumps", "planned_date": past}
    assert _locs(await client.post(deliveries, json=body, headers=rep.headers)) == [
        ["body", "planned_date"]
    ]
    assert await _count(database, Delivery) == 0
    body["planned_date"] = str(today)
    assert (await client.post(deliveries, json=body, headers=rep.headers)).status_code == 201


def _locs(response: httpx.Response) -> list[list[str | int]]:
    return [e["loc"] for e in problem(response, 422, "validation_error")["errors"]]
