"""Collection: payments fill the oldest open installments first, overpayment is refused
(also under concurrency), and receivables list open installments by region and rep."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal

import httpx
from sqlalchemy import select

from app.db import Database
from app.models.contracts import Contract, ContractStatus, Installment
from app.services import department
from tests.contract_helpers import API, make_contract, money
from tests.factories import Person, make_org, problem


async def _plan(
    client: httpx.AsyncClient, who: Person, contract_id: uuid.UUID, *amounts_and_days: tuple
) -> list[dict]:  # type: ignore[type-arg]
    """Replace the plan of a draft contract, then sign it (set-up)."""
    today = department.today()
    plan = [
        {"due_date": str(today + timedelta(days=days)), "amount": amount}
        for amount, days in amounts_and_days
    ]
    response = await client.put(
        f"{API}/contracts/{contract_id}/installments",
        headers=who.headers,
        json={"installments": plan},
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def _set_status(database: Database, contract_id: uuid.UUID, status: str) -> None:
    async with database.session() as session, session.begin():
        (await session.get_one(Contract, contract_id)).status = status


async def _pay(
    client: httpx.AsyncClient, who: Person, contract_id: uuid.UUID, amount: str, **extra: str
) -> httpx.Response:
    body = {"amount": amount, "received_on": str(department.today()), "method": "cash", **extra}
    return await client.post(
        f"{API}/contracts/{contract_id}/payments", headers=who.headers, json=body
    )


async def test_payments_fill_the_oldest_installments_first(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    contract = await make_contract(database, rep, plan=False)  # 2,000.00
    # Listed by due date whatever the order given.
    plan = await _plan(client, rep, contract.id, ("700.00", 60), ("500.00", 30), ("800.00", 90))
    assert [i["amount"] for i in plan] == ["500.00", "700.00", "800.00"]
    await _set_status(database, contract.id, ContractStatus.SIGNED)

    paid = await _pay(client, rep, contract.id, "650.00", reference="TT-001")
    assert paid.status_code == 201, paid.text
    assert paid.headers["location"] == f"/api/v1/contracts/{contract.id}/payments"
    assert [(a["installment_id"], a["amount"]) for a in paid.json()["allocations"]] == [
        (plan[0]["id"], "500.00"),
        (plan[1]["id"], "150.00"),
    ]
    # A named installment is paid, even when an older one is open.
    named = await _pay(client, rep, contract.id, "800.00", installment_id=plan[2]["id"])
    assert named.json()["allocations"] == [{"installment_id": plan[2]["id"], "amount": "800.00"}]
    items = (
        await client.get(f"{API}/contracts/{contract.id}/installments", headers=rep.headers)
    ).json()["items"]
    assert [(i["paid_amount"], i["outstanding_amount"], i["status"]) for i in items] == [
        ("500.00", "0.00", "paid"),
        ("150.00", "550.00", "partially_paid"),
        ("800.00", "0.00", "paid"),
    ]
    # More than a named installment still owes is refused, even with room elsewhere.
    over = await _pay(client, rep, contract.id, "0.01", installment_id=plan[0]["id"])
    body = problem(over, 409, "conflict")
    assert (body["reason"], body["outstanding_amount"]) == ("overpayment", "0.00")
    payments = (
        await client.get(f"{API}/contracts/{contract.id}/payments", headers=rep.headers)
    ).json()
    assert [p["amount"] for p in payments["items"]] == ["650.00", "800.00"]
    assert payments["items"][0]["reference"] == "TT-001"
    c = (await client.get(f"{API}/contracts/{contract.id}", headers=rep.headers)).json()
    assert (c["status"], money(c["paid_amount"]), money(c["outstanding_amount"])) == (
        "in_progress",
        Decimal("1450.00"),
        Decimal("550.00"),
    )


async def test_payments_are_taken_only_while_the_contract_runs(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    for status in ("draft", "under_review", "approved", "completed", "terminated", "cancelled"):
        contract = await make_contract(database, rep, ContractStatus(status))
        body = problem(await _pay(client, rep, contract.id, "1.00"), 409, "conflict")
        assert body["reason"] == "contract_not_active", status
    contract = await make_contract(database, rep, ContractStatus.SIGNED)
    later = str(department.today() + timedelta(days=2))
    problem(
        await _pay(client, rep, contract.id, "1.00", received_on=later), 422, "validation_error"
    )
    problem(await _pay(client, rep, contract.id, "0.00"), 422, "validation_error")
    problem(await _pay(client, rep, contract.id, "1.00", method="barter"), 422, "validation_error")
    other = await make_contract(database, rep, ContractStatus.SIGNED)
    async with database.session(write=False) as session:
        foreign = await session.scalar(
            select(Installment.id).where(Installment.contract_id == other.id)
        )
    stranger = await _pay(client, rep, contract.id, "1.00", installment_id=str(foreign))
    problem(stranger, 422, "validation_error")
    problem(await _pay(client, org.east_rep2, contract.id, "1.00"), 404, "not_found")


async def test_concurrent_payments_cannot_overpay(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    contract = await make_contract(database, org.east_rep1, ContractStatus.SIGNED)  # 2,000.00
    answers = await asyncio.gather(
        *(_pay(client, org.east_rep1, contract.id, "300.00") for _ in range(8))
    )
    statuses = sorted(a.status_code for a in answers)
    # 6 × 300 = 1,800 fit; a 7th would make 2,100.
    assert statuses == [201] * 6 + [409] * 2, [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 409:
            assert problem(answer, 409, "conflict")["reason"] == "overpayment"
    async with database.session(write=False) as session:
        row = await session.get_one(Contract, contract.id)
        installment = await session.scalar(
            select(Installment).where(Installment.contract_id == contract.id)
        )
    assert row.paid_amount == Decimal("1800.00") and installment is not None
    assert installment.paid_amount == Decimal("1800.00")


async def test_receivables_by_overdue_region_and_rep_in_scope(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    today = department.today()
    east1 = await make_contract(database, org.east_rep1, plan=False)
    plan = await _plan(client, org.east_rep1, east1.id, ("1000.00", 10), ("1000.00", 40))
    await _set_status(database, east1.id, ContractStatus.SIGNED)
    east2 = await make_contract(database, org.east_rep2, ContractStatus.IN_PROGRESS)
    north = await make_contract(database, org.north_rep, ContractStatus.SIGNED)
    draft = await make_contract(database, org.east_rep1)  # not a receivable yet
    async with database.session() as session, session.begin():
        # east1's first installment fell due 5 days ago, north's only one 3 days ago.
        first = await session.get_one(Installment, uuid.UUID(plan[0]["id"]))
        first.due_date = today - timedelta(days=5)
        norths = await session.scalar(
            select(Installment).where(Installment.contract_id == north.id)
        )
        assert norths is not None
        norths.due_date = today - timedelta(days=3)
    assert (await _pay(client, org.east_rep1, east1.id, "400.00")).status_code == 201

    async def receivables(who: Person, **params: str) -> list[tuple[str, str, bool, int]]:
        response = await client.get(f"{API}/receivables", headers=who.headers, params=params)
        assert response.status_code == 200, response.text
        return [
            (r["contract_number"], r["outstanding_amount"], r["overdue"], r["days_overdue"])
            for r in response.json()["items"]
        ]

    n1, n2, nn = east1.number, east2.number, north.number
    assert await receivables(org.director, overdue="true") == [
        (n1, "600.00", True, 5),
        (nn, "2000.00", True, 3),
    ]
    assert await receivables(org.east_manager, overdue="true") == [(n1, "600.00", True, 5)]
    assert await receivables(org.north_rep, overdue="true") == [(nn, "2000.00", True, 3)]
    assert await receivables(org.east_rep2, overdue="true") == []
    assert await receivables(org.east_manager) == [
        (n1, "600.00", True, 5),
        (n2, "2000.00", False, 0),
        (n1, "1000.00", False, 0),
    ]
    assert await receivables(org.director, region_id=str(org.north.id)) == [
        (nn, "2000.00", True, 3)
    ]
    assert await receivables(org.east_manager, owner_id=str(org.east_rep2.id)) == [
        (n2, "2000.00", False, 0)
    ]
    assert await receivables(org.director, overdue="false", contract_id=str(draft.id)) == []

    # Pages follow the due date.
    first = await client.get(
        f"{API}/receivables", headers=org.director.headers, params={"limit": 2}
    )
    page = first.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = await client.get(
        f"{API}/receivables",
        headers=org.director.headers,
        params={"limit": 2, "cursor": page["next_cursor"]},
    )
    seen = [r["installment_id"] for r in page["items"] + rest.json()["items"]]
    assert len(seen) == len(set(seen)) == 4 and rest.json()["next_cursor"] is None
    bad = await client.get(
        f"{API}/receivables", headers=org.director.headers, params={"cursor": "x"}
    )
    problem(bad, 400, "bad_request")
