"""Contract review: the plan gate, who reviews at each step, rejection and resubmission,
overdue reviews raising one event per step, termination and cancellation."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from app.db import Database
from app.models.contracts import Contract, ContractStatus, ReviewStep
from app.models.platform import Event
from app.models.types import utcnow
from app.services import contract_workflow
from tests.contract_helpers import API, LARGE, make_contract, move
from tests.factories import make_org, problem
from tests.pipeline_helpers import make_opportunity, make_quote


async def _count_events(database: Database, type_: str, entity_id: uuid.UUID) -> int:
    async with database.session(write=False) as session:
        found = await session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.type == type_, Event.entity_id == entity_id)
        )
    return int(found or 0)


async def _sweep(database: Database) -> int:
    async with database.session() as session, session.begin():
        return await contract_workflow.flag_overdue_reviews(session)


async def _set(database: Database, contract_id: uuid.UUID, **values: object) -> None:
    async with database.session() as session, session.begin():
        row = await session.get_one(Contract, contract_id)
        for key, value in values.items():
            setattr(row, key, value)


async def _options(client: httpx.AsyncClient, who, contract_id: uuid.UUID) -> dict:  # type: ignore[no-untyped-def]
    response = await client.get(f"{API}/contracts/{contract_id}/transitions", headers=who.headers)
    assert response.status_code == 200, response.text
    return {o["to"]: o["blocked_by"] for o in response.json()}


async def test_the_plan_must_add_up_and_changes_only_in_draft(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    contract = await make_contract(database, rep, plan=False)  # 2,000.00
    url = f"{API}/contracts/{contract.id}/installments"
    assert await _options(client, rep, contract.id) == {
        "under_review": "plan_adds_up",
        "cancelled": None,
    }
    too_much = await client.post(
        url, headers=rep.headers, json={"due_date": "2027-01-31", "amount": "2000.01"}
    )
    assert problem(too_much, 409, "conflict")["reason"] == "plan_exceeds_amount"
    zero = await client.post(
        url, headers=rep.headers, json={"due_date": "2027-01-31", "amount": "0"}
    )
    problem(zero, 422, "validation_error")
    half = {"due_date": "2027-01-31", "amount": "1000.00"}
    assert (await client.post(url, headers=rep.headers, json=half)).status_code == 201
    body = problem(await move(client, rep, contract.id, "under_review"), 409, "conflict")
    assert body["reason"] == "plan_adds_up" and "1000.00" in body["detail"]

    # The whole plan at once; the contract's ETag guards it.
    contract_etag = (
        await client.get(f"{API}/contracts/{contract.id}", headers=rep.headers)
    ).headers["etag"]
    plan = {
        "installments": [
            {"due_date": "2027-03-31", "amount": "1400.00"},
            {"due_date": "2027-01-31", "amount": "600.00"},
        ]
    }
    stale = await client.put(url, headers={**rep.headers, "If-Match": '"1"'}, json=plan)
    problem(stale, 412, "version_conflict")
    put = await client.put(url, headers={**rep.headers, "If-Match": contract_etag}, json=plan)
    assert put.status_code == 200, put.text
    assert [(i["due_date"], i["amount"]) for i in put.json()["items"]] == [
        ("2027-01-31", "600.00"),
        ("2027-03-31", "1400.00"),
    ]
    submitted = await move(client, rep, contract.id, "under_review")
    assert submitted.status_code == 200, submitted.text
    late = await client.put(url, headers=rep.headers, json={"installments": []})
    assert problem(late, 409, "conflict")["reason"] == "contract_not_draft"


async def test_each_step_shows_to_its_reviewer_only(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    contract = await make_contract(
        database, org.east_rep1, ContractStatus.UNDER_REVIEW, list_price=LARGE
    )
    decide = {"approved": None, "rejected": None, "cancelled": None}
    assert await _options(client, org.east_manager, contract.id) == decide
    assert await _options(client, org.director, contract.id) == {"cancelled": None}
    assert await _options(client, org.east_rep1, contract.id) == {"cancelled": None}
    await _set(database, contract.id, review_step=ReviewStep.DIRECTOR)
    assert await _options(client, org.director, contract.id) == decide
    assert await _options(client, org.east_manager, contract.id) == {"cancelled": None}
    assert (await client.get(f"{API}/approvals", headers=org.north_manager.headers)).json()[
        "items"
    ] == []


async def test_rejection_needs_a_note_and_the_draft_is_resubmitted(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep, manager = org.east_rep1, org.east_manager
    contract = await make_contract(database, rep)
    assert (await move(client, rep, contract.id, "under_review")).status_code == 200
    problem(await move(client, manager, contract.id, "rejected"), 422, "validation_error")
    rejected = await move(client, manager, contract.id, "rejected", note="Warranty too long.")
    assert rejected.status_code == 200, rejected.text
    c = rejected.json()
    assert (c["status"], c["decision_note"], c["review_step"]) == (
        "rejected",
        "Warranty too long.",
        None,
    )
    assert (await client.get(f"{API}/approvals", headers=manager.headers)).json()["items"] == []
    assert (await move(client, rep, contract.id, "draft")).json()["status"] == "draft"
    edited = await client.patch(
        f"{API}/contracts/{contract.id}", headers=rep.headers, json={"warranty": "One year"}
    )
    assert edited.status_code == 200, edited.text
    again = await move(client, rep, contract.id, "under_review")
    assert (again.json()["review_step"], again.json()["decision_note"]) == ("manager", None)
    assert await _count_events(database, "contract.rejected", contract.id) == 1
    assert await _count_events(database, "contract.submitted", contract.id) == 2


async def test_an_overdue_review_is_listed_and_raises_one_event_per_step(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    late = await make_contract(
        database, org.east_rep1, ContractStatus.UNDER_REVIEW, list_price=LARGE
    )
    on_time = await make_contract(database, org.east_rep1, ContractStatus.UNDER_REVIEW)
    await _set(database, late.id, review_due_at=utcnow() - timedelta(minutes=1))

    listed = await client.get(
        f"{API}/contracts", headers=org.east_manager.headers, params={"review_overdue": "true"}
    )
    assert [c["id"] for c in listed.json()["items"]] == [str(late.id)]
    assert listed.json()["items"][0]["review_overdue"] is True
    not_late = await client.get(
        f"{API}/contracts", headers=org.east_manager.headers, params={"review_overdue": "false"}
    )
    assert [c["id"] for c in not_late.json()["items"]] == [str(on_time.id)]
    version = (await client.get(f"{API}/contracts/{late.id}", headers=org.director.headers)).json()[
        "version"
    ]

    assert await _sweep(database) == 1
    assert await _sweep(database) == 0  # once per step
    assert await _count_events(database, "contract.review_overdue", late.id) == 1
    # The mark is bookkeeping: the contract's version (and a client's ETag) stay.
    after = (await client.get(f"{API}/contracts/{late.id}", headers=org.director.headers)).json()
    assert after["version"] == version

    # The manager's late approval starts the director's step, on time again.
    step = await move(client, org.east_manager, late.id, "approved")
    assert step.json()["review_step"] == "director" and step.json()["review_overdue"] is False
    assert await _sweep(database) == 0
    await _set(database, late.id, review_due_at=utcnow() - timedelta(minutes=1))
    assert await _sweep(database) == 1
    assert await _count_events(database, "contract.review_overdue", late.id) == 2


async def test_termination_needs_a_manager_and_a_reason(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    contract = await make_contract(database, org.east_rep1, ContractStatus.IN_PROGRESS)
    problem(
        await move(client, org.east_rep1, contract.id, "terminated", reason="Customer insolvent"),
        403,
        "forbidden",
    )
    problem(
        await move(client, org.east_manager, contract.id, "terminated"), 422, "validation_error"
    )
    done = await move(
        client, org.east_manager, contract.id, "terminated", reason="Customer insolvent"
    )
    assert done.status_code == 200, done.text
    assert (done.json()["termination_reason"], done.json()["status"]) == (
        "Customer insolvent",
        "terminated",
    )
    assert done.json()["terminated_at"] is not None
    assert await _count_events(database, "contract.terminated", contract.id) == 1


async def test_cancellation_only_before_signing(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    approved = await make_contract(database, org.east_rep1, ContractStatus.APPROVED)
    cancelled = await move(client, org.east_rep1, approved.id, "cancelled", note="Lost budget.")
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancelled_at"]
    assert await _count_events(database, "contract.cancelled", approved.id) == 1
    signed = await make_contract(database, org.east_rep1, ContractStatus.SIGNED)
    body = problem(
        await move(client, org.director, signed.id, "cancelled"), 409, "invalid_transition"
    )
    assert (body["current"], body["allowed"]) == ("signed", ["in_progress", "terminated"])
    body = problem(
        await move(client, org.director, signed.id, "completed"), 409, "invalid_transition"
    )


async def test_the_inbox_lists_quotes_and_contracts_oldest_first(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    first = await make_contract(
        database, org.east_rep1, ContractStatus.UNDER_REVIEW, review_step=ReviewStep.DIRECTOR
    )
    opp = await make_opportunity(database, org.east_rep1)
    # 20% off: the director's to approve.
    quote = await make_quote(database, org.east_rep1, opp, unit_price="800.00")
    assert (
        await client.post(
            f"{API}/quotes/{quote.id}/transitions",
            headers=org.east_rep1.headers,
            json={"to": "pending_approval"},
        )
    ).status_code == 200
    second = await make_contract(
        database, org.north_rep, ContractStatus.UNDER_REVIEW, review_step=ReviewStep.DIRECTOR
    )
    inbox = (await client.get(f"{API}/approvals", headers=org.director.headers)).json()["items"]
    assert [(i["kind"], i["id"]) for i in inbox] == [
        ("contract", str(first.id)),
        ("quote", str(quote.id)),
        ("contract", str(second.id)),
    ]
    assert inbox[0]["discount_percent"] is None and inbox[1]["discount_percent"] == "20.00"
