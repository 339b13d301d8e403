"""The suggested class follows every change that moves it: an open opportunity's amount,
its opening and closing, signing and termination, and revenue ageing past 12 months (the
worker, daily)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from app.db import Database
from app.models.contracts import Contract, ContractStatus
from app.models.customers import Customer
from app.models.pipeline import Stage
from app.models.platform import Event
from app.models.quotes import QuoteStatus
from app.models.types import utcnow
from app.worker import reclassify_aged_customers
from tests.contract_helpers import LARGE, make_contract, move
from tests.factories import Person, make_customer, make_org
from tests.pipeline_helpers import make_opportunity, make_quote

API = "/api/v1"


async def _classes(client: httpx.AsyncClient, who: Person, customer_id: object) -> tuple[str, str]:
    body = (await client.get(f"{API}/customers/{customer_id}", headers=who.headers)).json()
    return body["suggested_classification"], body["classification"]


async def _updates(database: Database, customer_id: uuid.UUID) -> int:
    async with database.session(write=False) as session:
        stmt = select(func.count()).where(
            Event.type == "customer.updated", Event.entity_id == customer_id
        )
        return int(await session.scalar(stmt) or 0)


async def test_open_opportunities_move_the_suggestion(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    customer = await make_customer(database, rep)
    created = await client.post(
        f"{API}/opportunities",
        headers=rep.headers,
        json={"customer_id": str(customer.id), "title": "Line 2", "amount": "250000.00"},
    )
    assert created.status_code == 201, created.text
    opp = f"{API}/opportunities/{created.json()['id']}"
    assert await _classes(client, rep, customer.id) == ("B", "B")

    async def patch(amount: str) -> None:
        assert (
            await client.patch(opp, headers=rep.headers, json={"amount": amount})
        ).status_code == 200

    async def to(who: Person, stage: str, **extra: str) -> None:
        moved = await client.post(
            f"{opp}/transitions", headers=who.headers, json={"to": stage, **extra}
        )
        assert moved.status_code == 200, moved.text

    await patch("199999.99")
    assert await _classes(client, rep, customer.id) == ("C", "C")
    await patch("200000.00")  # any open opportunity of 200,000 or more
    assert await _classes(client, rep, customer.id) == ("B", "B")
    await to(rep, "contacted")
    assert await _classes(client, rep, customer.id) == ("B", "B")
    await to(rep, "lost", lost_reason="no_budget", note="Frozen")
    assert await _classes(client, rep, customer.id) == ("C", "C")
    await to(org.east_manager, "contacted")  # reopened where it was lost
    assert await _classes(client, rep, customer.id) == ("B", "B")
    assert (await client.delete(opp, headers=org.east_manager.headers)).status_code == 204
    assert await _classes(client, rep, customer.id) == ("C", "C")
    # Each change of class told subscribers; the stage move between open stages did not.
    assert await _updates(database, customer.id) == 6


async def test_winning_signing_and_terminating_move_the_suggestion(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    opp = await make_opportunity(database, rep, Stage.NEGOTIATION)
    await make_quote(database, rep, opp, QuoteStatus.ACCEPTED, list_price=LARGE)
    path = f"{API}/opportunities/{opp.id}"
    await client.patch(path, headers=rep.headers, json={"amount": "600000.00"})
    assert await _classes(client, rep, opp.customer_id) == ("B", "B")

    won = await client.post(f"{path}/transitions", headers=rep.headers, json={"to": "won"})
    assert won.json()["stage"] == "won", won.text
    # Won is closed, and nothing is signed yet.
    assert await _classes(client, rep, opp.customer_id) == ("C", "C")

    drafted = await client.post(
        f"{API}/contracts", headers=rep.headers, json={"opportunity_id": str(opp.id)}
    )
    assert drafted.status_code == 201, drafted.text
    contract_id = drafted.json()["id"]
    async with database.session() as session, session.begin():
        (await session.get_one(Contract, uuid.UUID(contract_id))).status = "approved"
    assert (await move(client, rep, contract_id, "signed")).status_code == 200
    assert await _classes(client, rep, opp.customer_id) == ("B", "B")

    terminated = await move(
        client, org.east_manager, contract_id, "terminated", reason="Customer insolvent"
    )
    assert terminated.json()["status"] == "terminated", terminated.text
    assert await _classes(client, rep, opp.customer_id) == ("C", "C")


async def test_revenue_ages_out_of_the_suggestion_daily(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    aged = await make_contract(database, rep, ContractStatus.SIGNED, list_price=LARGE)
    recent = await make_contract(database, rep, ContractStatus.SIGNED, list_price=LARGE)
    overridden = await make_contract(database, rep, ContractStatus.SIGNED, list_price=LARGE)
    async with database.session() as session, session.begin():
        for contract, days in ((aged, 366), (recent, 360), (overridden, 366)):
            row = await session.get_one(Contract, contract.id)
            row.signed_at = utcnow() - timedelta(days=days)  # the clock moved on since
            customer = await session.get_one(Customer, contract.customer_id)
            customer.suggested_classification = customer.classification = "B"
    put = await client.put(
        f"{API}/customers/{overridden.customer_id}/classification",
        headers=org.east_manager.headers,
        json={"classification": "A", "reason": "Group buyer"},
    )
    assert put.status_code == 200, put.text
    before = await _updates(database, aged.customer_id)

    assert await reclassify_aged_customers(database) == 2
    assert await _classes(client, rep, aged.customer_id) == ("C", "C")
    assert await _classes(client, rep, recent.customer_id) == ("B", "B")
    assert await _classes(client, rep, overridden.customer_id) == ("C", "A")  # kept by the manager
    assert await _updates(database, aged.customer_id) == before + 1

    assert await reclassify_aged_customers(database) == 0  # nothing new: nothing changes
    assert await _updates(database, aged.customer_id) == before + 1
