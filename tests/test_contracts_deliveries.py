"""Deliveries and completion: what a delivery's dates must satisfy, the customer's
confirmation, and completion by itself whichever of payment and confirmation comes last."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from app.db import Database
from app.models.contracts import Contract, ContractStatus
from app.models.customers import FollowUp
from app.models.platform import Event
from app.services import department
from tests.contract_helpers import API, make_contract
from tests.factories import Person, make_org, problem


async def _deliver(
    client: httpx.AsyncClient, who: Person, contract_id: uuid.UUID, description: str = "Pumps"
) -> dict:  # type: ignore[type-arg]
    response = await client.post(
        f"{API}/contracts/{contract_id}/deliveries",
        headers=who.headers,
        json={"description": description, "planned_date": str(department.today())},
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/api/v1/deliveries/{response.json()['id']}"
    return response.json()


async def _patch(
    client: httpx.AsyncClient, who: Person, delivery_id: str, **fields: str | None
) -> httpx.Response:
    return await client.patch(f"{API}/deliveries/{delivery_id}", headers=who.headers, json=fields)


def _confirmed() -> dict[str, str]:
    today = str(department.today())
    return {"delivered_on": today, "confirmed_on": today, "confirmed_by": "Zhou Min"}


async def _pay_all(
    client: httpx.AsyncClient, who: Person, contract_id: uuid.UUID
) -> httpx.Response:
    return await client.post(
        f"{API}/contracts/{contract_id}/payments",
        headers=who.headers,
        json={"amount": "2000.00", "received_on": str(department.today()), "method": "card"},
    )


async def _status(client: httpx.AsyncClient, who: Person, contract_id: uuid.UUID) -> str:
    response = await client.get(f"{API}/contracts/{contract_id}", headers=who.headers)
    return response.json()["status"]


async def _completions(database: Database, contract_id: uuid.UUID) -> tuple[int, int]:
    """(contract.completed events, return visits) of this contract."""
    async with database.session(write=False) as session:
        events = await session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.type == "contract.completed", Event.entity_id == contract_id)
        )
        visits = await session.scalar(
            select(func.count()).select_from(FollowUp).where(FollowUp.contract_id == contract_id)
        )
    return int(events or 0), int(visits or 0)


async def test_a_delivery_is_made_then_confirmed_and_then_fixed(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    contract = await make_contract(database, rep, ContractStatus.SIGNED)
    delivery = await _deliver(client, rep, contract.id)
    today = department.today()
    tomorrow, yesterday = str(today + timedelta(days=1)), str(today - timedelta(days=1))
    for fields in (
        {"confirmed_on": str(today), "confirmed_by": "Zhou Min"},  # not delivered yet
        {"delivered_on": tomorrow},  # in the future
        {"delivered_on": str(today), "confirmed_on": yesterday, "confirmed_by": "Zhou Min"},
        {"delivered_on": str(today), "confirmed_on": str(today)},  # who confirmed?
        {"confirmed_by": "Zhou Min"},  # when?
        {"planned_date": None},
    ):
        problem(await _patch(client, rep, delivery["id"], **fields), 422, "validation_error")

    delivered = await _patch(client, rep, delivery["id"], delivered_on=str(today))
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["status"] == "delivered"
    # The first delivery of a signed contract puts it in progress.
    assert await _status(client, rep, contract.id) == "in_progress"
    confirmed = await _patch(
        client, rep, delivery["id"], confirmed_on=str(today), confirmed_by="Zhou Min"
    )
    assert confirmed.json()["status"] == "confirmed"
    assert confirmed.headers["etag"] == f'"{confirmed.json()["version"]}"'
    fixed = await _patch(client, rep, delivery["id"], description="Other pumps")
    assert problem(fixed, 409, "conflict")["reason"] == "delivery_confirmed"
    read = await client.get(f"{API}/deliveries/{delivery['id']}", headers=org.east_manager.headers)
    assert (read.json()["confirmed_by"], read.json()["confirmed_on"]) == ("Zhou Min", str(today))
    for stranger in (org.east_rep2, org.north_manager):
        problem(
            await client.get(f"{API}/deliveries/{delivery['id']}", headers=stranger.headers),
            404,
            "not_found",
        )


async def test_deliveries_are_planned_early_but_made_once_signed(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    approved = await make_contract(database, rep, ContractStatus.APPROVED)
    planned = await _deliver(client, rep, approved.id)
    early = await _patch(client, rep, planned["id"], delivered_on=str(department.today()))
    assert problem(early, 409, "conflict")["reason"] == "contract_not_active"
    listed = await client.get(f"{API}/contracts/{approved.id}/deliveries", headers=rep.headers)
    assert [d["status"] for d in listed.json()["items"]] == ["planned"]
    cancelled = await make_contract(database, rep, ContractStatus.CANCELLED)
    closed = await client.post(
        f"{API}/contracts/{cancelled.id}/deliveries",
        headers=rep.headers,
        json={"description": "Pumps", "planned_date": "2027-01-01"},
    )
    assert problem(closed, 409, "conflict")["reason"] == "contract_closed"


async def test_the_payment_that_comes_last_completes_the_contract(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    contract = await make_contract(database, rep, ContractStatus.SIGNED)
    first, second = (
        await _deliver(client, rep, contract.id),
        await _deliver(client, rep, contract.id),
    )
    assert (await _patch(client, rep, first["id"], **_confirmed())).status_code == 200
    assert (await _pay_all(client, rep, contract.id)).status_code == 201
    # Paid in full, one delivery still unconfirmed: still running.
    assert await _status(client, rep, contract.id) == "in_progress"
    assert (
        await _patch(client, rep, second["id"], delivered_on=str(department.today()))
    ).is_success
    assert await _status(client, rep, contract.id) == "in_progress"
    confirm = {"confirmed_on": str(department.today()), "confirmed_by": "Gao Yan"}
    assert (await _patch(client, rep, second["id"], **confirm)).status_code == 200
    assert await _status(client, rep, contract.id) == "completed"
    assert await _completions(database, contract.id) == (1, 1)

    other = await make_contract(database, rep, ContractStatus.SIGNED)
    delivery = await _deliver(client, rep, other.id)
    assert (await _patch(client, rep, delivery["id"], **_confirmed())).status_code == 200
    assert await _status(client, rep, other.id) == "in_progress"
    assert (await _pay_all(client, rep, other.id)).status_code == 201
    assert await _status(client, rep, other.id) == "completed"


async def test_a_paid_contract_without_deliveries_keeps_running(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    contract = await make_contract(database, org.east_rep1, ContractStatus.SIGNED)
    assert (await _pay_all(client, org.east_rep1, contract.id)).status_code == 201
    assert await _status(client, org.east_rep1, contract.id) == "in_progress"
    assert await _completions(database, contract.id) == (0, 0)


async def test_payment_and_confirmation_together_complete_it_once(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    contract = await make_contract(database, rep, ContractStatus.SIGNED)
    delivery = await _deliver(client, rep, contract.id)
    today = str(department.today())
    assert (await _patch(client, rep, delivery["id"], delivered_on=today)).status_code == 200
    paid, confirmed = await asyncio.gather(
        _pay_all(client, rep, contract.id),
        _patch(client, rep, delivery["id"], confirmed_on=today, confirmed_by="He Lin"),
    )
    assert (paid.status_code, confirmed.status_code) == (201, 200), (paid.text, confirmed.text)
    async with database.session(write=False) as session:
        row = await session.get_one(Contract, contract.id)
    assert row.status == ContractStatus.COMPLETED
    assert await _completions(database, contract.id) == (1, 1)
