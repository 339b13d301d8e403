"""Contracts end to end: a large won deal through drafting, the two-step review, signing,
deliveries and payments to completion and the planned return visit; and drafting's rules."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.business_hours import add_working_hours
from app.db import Database
from app.models.contracts import Contract, ContractRead, ContractStatus
from app.models.customers import Customer
from app.models.pipeline import Stage
from app.models.platform import Event
from app.services import department
from tests.contract_helpers import (
    API,
    LARGE,
    make_contract,
    make_won_opportunity,
    money,
    move,
)
from tests.factories import etag_of, make_org, problem
from tests.pipeline_helpers import make_opportunity


async def _event_types(database: Database, entity_id: str) -> list[str]:
    async with database.session(write=False) as session:
        rows = await session.scalars(
            select(Event.type).where(Event.entity_id == uuid.UUID(entity_id)).order_by(Event.seq)
        )
        return list(rows.all())


def _due(started_at: str) -> datetime:
    settings = department.DepartmentSettings()
    start = datetime.fromisoformat(started_at)
    return add_working_hours(start, settings.contract_review_hours, settings.business_hours)


async def test_large_contract_from_won_deal_to_completion_and_return_visit(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep, manager, director = org.east_rep1, org.east_manager, org.director
    opp = await make_won_opportunity(database, rep, list_price=LARGE)
    today = department.today()

    # Drafting copies the accepted quote: two units at 300,000.
    created = await client.post(
        f"{API}/contracts",
        headers=rep.headers,
        json={
            "opportunity_id": str(opp.id),
            "delivery_date": str(today + timedelta(days=60)),
            "payment_terms": "30% advance, 70% on delivery",
            "warranty": "Two years on parts and labour",
        },
    )
    assert created.status_code == 201, created.text
    contract = created.json()
    assert created.headers["location"] == f"/api/v1/contracts/{contract['id']}"
    assert created.headers["etag"] == etag_of(ContractRead, created)
    assert created.json()["version"] == 1
    assert re.fullmatch(rf"HT-{today.year}-00001", contract["number"])
    assert (contract["status"], contract["amount"]) == ("draft", "600000.00")
    assert (contract["customer_id"], contract["owner_id"]) == (str(opp.customer_id), str(rep.id))
    [line] = contract["lines"]
    assert (line["quantity"], line["unit_price"], line["line_total"]) == (
        "2.000",
        "300000.00",
        "600000.00",
    )
    path = f"contracts/{contract['id']}"

    # The plan must add up to the amount before review.
    body = problem(await move(client, rep, contract["id"], "under_review"), 409, "conflict")
    assert body["reason"] == "plan_adds_up"
    first_due, second_due = today + timedelta(days=10), today + timedelta(days=40)
    for due, amount in ((first_due, "180000.00"), (second_due, "420000.00")):
        added = await client.post(
            f"{API}/{path}/installments",
            headers=rep.headers,
            json={"due_date": str(due), "amount": amount},
        )
        assert added.status_code == 201, added.text
    plan = (await client.get(f"{API}/{path}/installments", headers=rep.headers)).json()["items"]
    assert [(i["due_date"], i["amount"], i["status"]) for i in plan] == [
        (str(first_due), "180000.00", "open"),
        (str(second_due), "420000.00", "open"),
    ]

    # Submitted: the manager's step first, due 9 working hours after it reached them.
    submitted = await move(client, rep, contract["id"], "under_review")
    assert submitted.status_code == 200, submitted.text
    c = submitted.json()
    assert (c["status"], c["review_step"], c["director_review"]) == (
        "under_review",
        "manager",
        True,
    )
    assert datetime.fromisoformat(c["review_due_at"]) == _due(c["review_started_at"])
    assert (await client.get(f"{API}/approvals", headers=director.headers)).json()["items"] == []
    inbox = (await client.get(f"{API}/approvals", headers=manager.headers)).json()["items"]
    assert [(i["kind"], i["id"], i["approver_role"]) for i in inbox] == [
        ("contract", c["id"], "regional_manager")
    ]
    assert inbox[0]["due_at"] == c["review_due_at"]
    problem(await move(client, director, c["id"], "approved"), 403, "forbidden")
    problem(await move(client, rep, c["id"], "approved"), 403, "forbidden")
    problem(await move(client, org.north_manager, c["id"], "approved"), 404, "not_found")

    # The manager approves: still under review, now the director's step.
    step = await move(client, manager, c["id"], "approved", note="Terms checked.")
    assert step.status_code == 200, step.text
    c = step.json()
    assert (c["status"], c["review_step"]) == ("under_review", "director")
    assert c["manager_approved_by_id"] == str(manager.id)
    assert datetime.fromisoformat(c["review_due_at"]) == _due(c["review_started_at"])
    assert (await client.get(f"{API}/approvals", headers=manager.headers)).json()["items"] == []
    inbox = (await client.get(f"{API}/approvals", headers=director.headers)).json()["items"]
    assert [(i["id"], i["approver_role"]) for i in inbox] == [(c["id"], "director")]
    problem(await move(client, manager, c["id"], "approved"), 403, "forbidden")
    refused = await client.patch(f"{API}/{path}", headers=rep.headers, json={"warranty": "None"})
    assert problem(refused, 409, "conflict")["reason"] == "contract_not_draft"

    approved = await move(client, director, c["id"], "approved", note="Approved.")
    assert approved.status_code == 200, approved.text
    c = approved.json()
    assert (c["status"], c["review_step"], c["review_due_at"]) == ("approved", None, None)
    assert c["approved_by_id"] == str(director.id)

    # Signing turns the prospect customer active.
    signed = await move(client, rep, c["id"], "signed")
    assert signed.status_code == 200, signed.text
    assert signed.json()["signed_at"] is not None
    customer = await client.get(f"{API}/customers/{opp.customer_id}", headers=rep.headers)
    assert customer.json()["status"] == "active"

    deliveries = []
    for description in ("First pump", "Second pump"):
        made = await client.post(
            f"{API}/{path}/deliveries",
            headers=rep.headers,
            json={"description": description, "planned_date": str(today + timedelta(days=5))},
        )
        assert made.status_code == 201, made.text
        assert made.json()["status"] == "planned"
        deliveries.append(made.json())

    # The first payment puts the contract in progress; it fills the oldest installment.
    paid = await client.post(
        f"{API}/{path}/payments",
        headers=rep.headers,
        json={"amount": "100000.00", "received_on": str(today), "method": "bank_transfer"},
    )
    assert paid.status_code == 201, paid.text
    assert paid.json()["allocations"] == [{"installment_id": plan[0]["id"], "amount": "100000.00"}]
    c = (await client.get(f"{API}/{path}", headers=rep.headers)).json()
    assert (c["status"], c["paid_amount"], c["outstanding_amount"]) == (
        "in_progress",
        "100000.00",
        "500000.00",
    )
    too_much = await client.post(
        f"{API}/{path}/payments",
        headers=rep.headers,
        json={"amount": "500000.01", "received_on": str(today), "method": "cash"},
    )
    assert problem(too_much, 409, "conflict")["reason"] == "overpayment"

    confirmation = {
        "delivered_on": str(today),
        "confirmed_on": str(today),
        "confirmed_by": "Zhou Min",
    }
    first = await client.patch(
        f"{API}/deliveries/{deliveries[0]['id']}", headers=rep.headers, json=confirmation
    )
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "confirmed"
    rest = await client.post(
        f"{API}/{path}/payments",
        headers=rep.headers,
        json={"amount": "500000.00", "received_on": str(today), "method": "bank_transfer"},
    )
    assert [a["amount"] for a in rest.json()["allocations"]] == ["80000.00", "420000.00"]
    c = (await client.get(f"{API}/{path}", headers=rep.headers)).json()
    assert (c["status"], c["outstanding_amount"]) == ("in_progress", "0.00")

    # The last confirmation completes it, and plans the return visit within 7 days.
    last = await client.patch(
        f"{API}/deliveries/{deliveries[1]['id']}", headers=rep.headers, json=confirmation
    )
    assert last.status_code == 200, last.text
    c = (await client.get(f"{API}/{path}", headers=rep.headers)).json()
    assert c["status"] == "completed" and c["completed_at"] is not None
    visits = (
        await client.get(
            f"{API}/follow-ups",
            headers=rep.headers,
            params={"customer_id": str(opp.customer_id), "kind": "return_visit"},
        )
    ).json()["items"]
    assert len(visits) == 1
    visit = visits[0]
    assert (visit["status"], visit["contract_id"], visit["owner_id"]) == (
        "planned",
        c["id"],
        str(rep.id),
    )
    due = datetime.fromisoformat(visit["due_at"]) - datetime.fromisoformat(c["completed_at"])
    assert timedelta(days=6) < due <= timedelta(days=7)
    assert (await client.get(f"{API}/receivables", headers=rep.headers)).json()["items"] == []

    history = (await client.get(f"{API}/{path}/history", headers=rep.headers)).json()["items"]
    assert [(h["from_state"], h["to_state"]) for h in history] == [
        ("draft", "under_review"),
        ("under_review", "under_review"),
        ("under_review", "approved"),
        ("approved", "signed"),
        ("signed", "in_progress"),
        ("in_progress", "completed"),
    ]
    types = await _event_types(database, c["id"])
    for expected in (
        "contract.created",
        "contract.submitted",
        "contract.manager_approved",
        "contract.approved",
        "contract.signed",
        "contract.completed",
    ):
        assert types.count(expected) == 1, (expected, types)
    assert await _event_types(database, paid.json()["id"]) == ["payment.received"]
    assert "delivery.confirmed" in await _event_types(database, deliveries[1]["id"])


async def test_small_contract_needs_only_the_manager(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    contract = await make_contract(database, org.east_rep1)
    submitted = await move(client, org.east_rep1, contract.id, "under_review")
    assert submitted.json()["director_review"] is False
    approved = await move(client, org.east_manager, contract.id, "approved")
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["review_step"]) == ("approved", None)


async def test_drafting_needs_a_won_opportunity_and_makes_one_contract(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    open_opp = await make_opportunity(database, rep, Stage.NEGOTIATION)
    refused = await client.post(
        f"{API}/contracts", headers=rep.headers, json={"opportunity_id": str(open_opp.id)}
    )
    assert problem(refused, 409, "conflict")["reason"] == "opportunity_not_won"

    won = await make_won_opportunity(database, rep)
    body = {"opportunity_id": str(won.id)}
    hidden = await client.post(f"{API}/contracts", headers=org.east_rep2.headers, json=body)
    problem(hidden, 404, "not_found")
    first = await client.post(f"{API}/contracts", headers=rep.headers, json=body)
    assert first.status_code == 201, first.text
    again = await client.post(f"{API}/contracts", headers=org.east_manager.headers, json=body)
    conflict = problem(again, 409, "conflict")
    assert (conflict["reason"], conflict["existing_id"]) == ("contract_exists", first.json()["id"])


async def test_a_cancelled_contract_frees_its_opportunity_for_a_new_one(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    won = await make_won_opportunity(database, rep)
    body = {"opportunity_id": str(won.id)}
    first = await client.post(f"{API}/contracts", headers=rep.headers, json=body)
    assert first.status_code == 201, first.text
    cancelled = await move(client, rep, first.json()["id"], "cancelled", note="Wrong terms")
    assert cancelled.json()["status"] == "cancelled", cancelled.text

    # Several at once after the cancellation: one new contract, the others see it.
    answers = await asyncio.gather(
        *(
            client.post(f"{API}/contracts", headers=who.headers, json=body)
            for who in (rep, org.east_manager, org.director)
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 409, 409], [a.text for a in answers]
    second = next(a for a in answers if a.status_code == 201).json()
    assert second["id"] != first.json()["id"]
    for answer in answers:
        if answer.status_code == 409:
            conflict = problem(answer, 409, "conflict")
            assert (conflict["reason"], conflict["existing_id"]) == (
                "contract_exists",
                second["id"],
            )
    listed = await client.get(
        f"{API}/contracts", headers=rep.headers, params={"opportunity_id": str(won.id)}
    )
    assert sorted(c["status"] for c in listed.json()["items"]) == ["cancelled", "draft"]


async def test_the_database_keeps_one_live_contract_per_opportunity(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    contract = await make_contract(database, org.east_rep1, ContractStatus.CANCELLED)

    async def copy(status: ContractStatus, number: str) -> None:
        async with database.session() as session, session.begin():
            row = await session.get_one(Contract, contract.id)
            session.add(
                Contract(
                    **row.model_dump(exclude={"id", "number", "status", "version"}),
                    number=number,
                    status=status,
                )
            )

    await copy(ContractStatus.CANCELLED, "HT-1999-00001")  # cancelled ones do not count
    await copy(ContractStatus.DRAFT, "HT-1999-00002")
    with pytest.raises(IntegrityError):
        await copy(ContractStatus.SIGNED, "HT-1999-00003")


async def test_terms_change_while_draft_and_read_only_fields_are_refused(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    contract = await make_contract(database, org.east_rep1)
    url = f"{API}/contracts/{contract.id}"
    stale = await client.patch(
        url, headers={**org.east_rep1.headers, "If-Match": '"1"'}, json={"warranty": "1 year"}
    )
    problem(stale, 412, "version_conflict")  # adding the plan moved the version
    changed = await client.patch(
        url,
        headers=org.east_rep1.headers,
        json={"warranty": "1 year", "delivery_date": "2027-03-01", "payment_terms": "Net 30"},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["warranty"], changed.json()["delivery_date"]) == ("1 year", "2027-03-01")
    for field, value in (("amount", "1.00"), ("status", "signed"), ("number", "HT-1")):
        problem(
            await client.patch(url, headers=org.east_rep1.headers, json={field: value}),
            422,
            "validation_error",
        )


async def test_scope_reps_see_their_own_managers_their_region(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    mine = await make_contract(database, org.east_rep1)
    theirs = await make_contract(database, org.north_rep)

    def ids(response: httpx.Response) -> set[str]:
        return {item["id"] for item in response.json()["items"]}

    listed = {
        who: ids(await client.get(f"{API}/contracts", headers=person.headers))
        for who, person in (
            ("rep1", org.east_rep1),
            ("rep2", org.east_rep2),
            ("east", org.east_manager),
            ("director", org.director),
        )
    }
    assert listed == {
        "rep1": {str(mine.id)},
        "rep2": set(),
        "east": {str(mine.id)},
        "director": {str(mine.id), str(theirs.id)},
    }
    for person in (org.east_rep2, org.north_manager, org.north_rep):
        for suffix in ("", "/installments", "/payments", "/deliveries", "/transitions"):
            response = await client.get(
                f"{API}/contracts/{mine.id}{suffix}", headers=person.headers
            )
            problem(response, 404, "not_found")


async def test_signing_updates_the_customers_classification(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    contract = await make_contract(database, org.east_rep1, list_price=LARGE)
    async with database.session() as session, session.begin():
        row = await session.get_one(Contract, contract.id)
        row.status = "approved"
    signed = await move(client, org.east_rep1, contract.id, "signed")
    assert signed.status_code == 200, signed.text
    async with database.session(write=False) as session:
        customer = await session.get_one(Customer, contract.customer_id)
    # 600,000 signed in the last 12 months: class B (≥ 200,000), active.
    assert (customer.status, customer.suggested_classification, customer.classification) == (
        "active",
        "B",
        "B",
    )
    assert money(signed.json()["amount"]) == Decimal("600000.00")
