"""Collection (催收): an installment that falls overdue raises installment.overdue once and
plans a collection call for the contract's owner; no payment is dated before the signature."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import update

from app.db import Database
from app.models.contracts import Contract, ContractStatus, Installment
from app.models.types import utcnow
from app.services import department
from app.services.collections import flag_overdue_installments
from tests.contract_helpers import API, make_contract
from tests.factories import Person, make_org, problem


async def _due_days_ago(database: Database, contract_id: uuid.UUID, days: int) -> None:
    async with database.session() as session, session.begin():
        await session.execute(
            update(Installment)
            .where(Installment.contract_id == contract_id)
            .values(due_date=department.today() - timedelta(days=days))
        )


async def _sweep(database: Database) -> int:
    async with database.session() as session, session.begin():
        return await flag_overdue_installments(session)


async def _overdue_events(client: httpx.AsyncClient, who: Person) -> list[dict]:  # type: ignore[type-arg]
    response = await client.get(
        f"{API}/events", params={"type": "installment.overdue"}, headers=who.headers
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_an_overdue_installment_is_reported_once_and_collection_planned(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    overdue = await make_contract(database, rep, ContractStatus.IN_PROGRESS)
    await _due_days_ago(database, overdue.id, 3)
    on_time = await make_contract(database, rep, ContractStatus.SIGNED)  # due in 30 days
    draft = await make_contract(database, rep)  # not running: nothing to collect yet
    await _due_days_ago(database, draft.id, 3)

    assert await _sweep(database) == 1
    assert await _sweep(database) == 0  # once

    [event] = await _overdue_events(client, rep)
    data = event["data"]
    assert data["contract_id"] == str(overdue.id) and data["contract_number"] == overdue.number
    assert (data["overdue"], data["days_overdue"]) == (True, 3)
    assert data["outstanding_amount"] == str(overdue.amount)
    assert await _overdue_events(client, org.north_manager) == []
    assert len(await _overdue_events(client, org.east_manager)) == 1

    calls = await client.get(
        f"{API}/follow-ups",
        params={"customer_id": str(overdue.customer_id), "kind": "call"},
        headers=rep.headers,
    )
    [call] = calls.json()["items"]
    assert call["id"] == data["follow_up_id"]
    assert (call["status"], call["owner_id"], call["contract_id"]) == (
        "planned",
        str(rep.id),
        str(overdue.id),
    )
    assert overdue.number in call["summary"]
    for contract in (on_time, draft):
        other = await client.get(
            f"{API}/follow-ups",
            params={"customer_id": str(contract.customer_id), "kind": "call"},
            headers=rep.headers,
        )
        assert other.json()["items"] == []

    # Overdue is also what the receivables list says, unchanged by the report.
    listed = await client.get(f"{API}/receivables", params={"overdue": "true"}, headers=rep.headers)
    assert [r["contract_id"] for r in listed.json()["items"]] == [str(overdue.id)]


async def test_a_paid_installment_is_not_reported(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    contract = await make_contract(database, rep, ContractStatus.SIGNED)
    paid = await client.post(
        f"{API}/contracts/{contract.id}/payments",
        json={
            "amount": str(contract.amount),
            "received_on": str(department.today()),
            "method": "cash",
        },
        headers=rep.headers,
    )
    assert paid.status_code == 201, paid.text
    await _due_days_ago(database, contract.id, 3)
    assert await _sweep(database) == 0
    assert await _overdue_events(client, rep) == []


async def test_a_payment_is_not_dated_before_the_signature(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    contract = await make_contract(database, rep, ContractStatus.SIGNED)
    signed_at = utcnow() - timedelta(days=10)
    async with database.session() as session, session.begin():
        await session.execute(
            update(Contract).where(Contract.id == contract.id).values(signed_at=signed_at)
        )
    signed_on = department.local_date(department.DepartmentSettings(), signed_at)
    assert signed_on is not None
    url = f"{API}/contracts/{contract.id}/payments"

    def payment(day: object) -> dict[str, str]:
        return {"amount": "100.00", "received_on": str(day), "method": "bank_transfer"}

    early = await client.post(url, json=payment(signed_on - timedelta(days=1)), headers=rep.headers)
    error = problem(early, 422, "validation_error")
    assert error["errors"][0]["loc"] == ["body", "received_on"]
    assert error["errors"][0]["type"] == "before_signing"
    listed = await client.get(url, headers=rep.headers)
    assert listed.json()["items"] == []
    on_the_day = await client.post(url, json=payment(signed_on), headers=rep.headers)
    assert on_the_day.status_code == 201, on_the_day.text
