"""Complaint intake, scope, handler reassignment and progress updates, through the API."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from app.db import Database
from app.models.complaints import ComplaintRead, ComplaintStatus
from app.models.people import Role
from app.models.platform import AuditEntry
from app.models.types import utcnow
from tests.complaint_helpers import (
    URL,
    body,
    events_of,
    iso,
    log_complaint,
    make_complaint,
    make_contract,
    stored,
)
from tests.factories import Org, etag_of, make_customer, make_org, make_user, problem
from tests.pipeline_helpers import make_opportunity


@pytest.fixture
async def org(database: Database) -> Org:
    return await make_org(database)


async def test_intake_defaults_handler_scope_and_times(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    before = utcnow()
    response = await client.post(URL, json=body(customer.id), headers=org.east_rep1.headers)

    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"{URL}/{created['id']}"
    assert response.headers["etag"] == etag_of(ComplaintRead, response)
    assert response.json()["version"] == 1
    assert created["status"] == "received"
    assert created["assignee_id"] == created["owner_id"] == str(org.east_rep1.id)
    assert created["received_by_id"] == str(org.east_rep1.id)
    assert created["region_id"] == str(org.east.id)
    assert created["breached"] is False and created["escalated_at"] is None
    row = await stored(database, created["id"])
    assert before <= row.received_at <= utcnow()
    assert row.acknowledge_due_at - row.received_at == timedelta(hours=8)  # medium
    [event] = await events_of(database, created["id"], "complaint.created")
    assert event.region_id == org.east.id and event.data["id"] == created["id"]
    async with database.session(write=False) as session:
        audit = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.entity_id == uuid.UUID(created["id"]))
            )
        ).all()
    assert [(a.action, a.actor_id) for a in audit] == [("create", org.east_rep1.id)]


async def test_an_earlier_received_at_is_kept_and_the_future_is_refused(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    earlier = (utcnow() - timedelta(minutes=30)).replace(microsecond=0)
    created = await log_complaint(client, org.east_rep1, customer.id, received_at=iso(earlier))
    assert (await stored(database, created["id"])).received_at == earlier

    future = iso(utcnow() + timedelta(minutes=5))
    response = await client.post(
        URL, json=body(customer.id, received_at=future), headers=org.east_rep1.headers
    )
    error = problem(response, 422, "validation_error")
    assert error["errors"][0]["loc"] == ["body", "received_at"]
    patched = await client.patch(
        f"{URL}/{created['id']}", json={"received_at": future}, headers=org.east_rep1.headers
    )
    problem(patched, 422, "validation_error")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("channel", "fax"),
        ("category", "weather"),
        ("severity", "urgent"),
        ("description", ""),
        ("received_at", "1700000000"),
        ("received_at", "2026-07-01T08:00:00"),
        ("status", "closed"),
        ("escalated_at", "2026-07-01T08:00:00Z"),
    ],
)
async def test_intake_refuses_bad_and_read_only_fields(
    client: httpx.AsyncClient, database: Database, org: Org, field: str, value: str
) -> None:
    customer = await make_customer(database, org.east_rep1)
    response = await client.post(
        URL, json=body(customer.id, **{field: value}), headers=org.east_rep1.headers
    )
    problem(response, 422, "validation_error")


async def test_customer_out_of_scope_is_not_found(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    for caller in (org.east_rep2, org.north_manager):
        response = await client.post(URL, json=body(customer.id), headers=caller.headers)
        problem(response, 404, "not_found")


async def test_an_unknown_contract_is_refused(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    response = await client.post(
        URL, json=body(customer.id, contract_id=str(uuid.uuid4())), headers=org.east_rep1.headers
    )
    error = problem(response, 422, "validation_error")
    assert error["errors"][0]["loc"] == ["body", "contract_id"]


async def test_contract_of_the_customer_is_linked_and_another_customers_refused(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    opp = await make_opportunity(database, org.east_rep1)
    contract = await make_contract(database, org.east_rep1, opp)
    created = await log_complaint(
        client, org.east_rep1, opp.customer_id, contract_id=str(contract.id)
    )
    assert created["contract_id"] == str(contract.id)
    other = await make_customer(database, org.east_rep1)
    response = await client.post(
        URL, json=body(other.id, contract_id=str(contract.id)), headers=org.east_rep1.headers
    )
    problem(response, 422, "validation_error")


async def test_scope_reps_see_their_customers_and_what_they_handle(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    mine = await make_complaint(database, org.east_rep1)
    handled = await make_complaint(database, org.east_rep1, assignee=org.east_rep2)
    north = await make_complaint(database, org.north_rep)

    async def ids(person) -> set[str]:  # type: ignore[no-untyped-def]
        response = await client.get(URL, headers=person.headers)
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    assert await ids(org.east_rep1) == {str(mine.id), str(handled.id)}
    assert await ids(org.east_rep2) == {str(handled.id)}
    assert await ids(org.east_manager) == {str(mine.id), str(handled.id)}
    assert await ids(org.north_manager) == {str(north.id)}
    assert await ids(org.director) == {str(mine.id), str(handled.id), str(north.id)}
    for caller in (org.east_rep2, org.north_rep, org.north_manager):
        for path in ("", "/transitions", "/updates"):
            response = await client.get(f"{URL}/{mine.id}{path}", headers=caller.headers)
            problem(response, 404, "not_found")
        moved = await client.post(
            f"{URL}/{mine.id}/transitions", json={"to": "acknowledged"}, headers=caller.headers
        )
        problem(moved, 404, "not_found")
        patched = await client.patch(
            f"{URL}/{mine.id}", json={"description": "x"}, headers=caller.headers
        )
        problem(patched, 404, "not_found")
    seen = await client.get(f"{URL}/{handled.id}", headers=org.east_rep2.headers)
    assert seen.status_code == 200 and seen.json()["version"] == 1
    assert seen.headers["etag"] == etag_of(ComplaintRead, seen)


async def test_manager_reassigns_the_handler_within_the_region(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    complaint = await make_complaint(database, org.east_rep1)
    url = f"{URL}/{complaint.id}"
    response = await client.patch(
        url,
        json={"assignee_id": str(org.east_rep2.id)},
        headers={**org.east_manager.headers, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.json()["assignee_id"] == str(org.east_rep2.id)
    assert response.headers["etag"] == etag_of(ComplaintRead, response)
    assert response.json()["version"] == 2
    [assigned] = await events_of(database, complaint.id, "complaint.assigned")
    assert assigned.data["previous_assignee_id"] == str(org.east_rep1.id)
    # The new handler now sees it and may work on it.
    moved = await client.post(
        f"{url}/transitions", json={"to": "acknowledged"}, headers=org.east_rep2.headers
    )
    assert moved.status_code == 200, moved.text

    inactive = await make_user(database, Role.REP, org.east, is_active=False)
    for assignee in (org.north_rep.id, inactive.id, org.director.id, uuid.uuid4()):
        refused = await client.patch(
            url, json={"assignee_id": str(assignee)}, headers=org.director.headers
        )
        error = problem(refused, 422, "validation_error")
        assert error["errors"][0]["loc"] == ["body", "assignee_id"]
    by_director = await client.patch(
        url, json={"assignee_id": str(org.east_manager.id)}, headers=org.director.headers
    )
    assert by_director.json()["assignee_id"] == str(org.east_manager.id)


async def test_reps_may_not_choose_the_handler(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    complaint = await make_complaint(database, org.east_rep1)
    response = await client.patch(
        f"{URL}/{complaint.id}",
        json={"assignee_id": str(org.east_rep2.id)},
        headers=org.east_rep1.headers,
    )
    problem(response, 403, "forbidden")
    customer = await make_customer(database, org.east_rep1)
    created = await client.post(
        URL,
        json=body(customer.id, assignee_id=str(org.east_rep2.id)),
        headers=org.east_rep1.headers,
    )
    problem(created, 403, "forbidden")
    by_manager = await log_complaint(
        client, org.east_manager, customer.id, assignee_id=str(org.east_rep2.id)
    )
    assert by_manager["assignee_id"] == str(org.east_rep2.id)
    assert by_manager["owner_id"] == str(org.east_rep1.id)


async def test_patch_changes_details_and_due_times_follow_severity(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    complaint = await make_complaint(database, org.east_rep1)
    url = f"{URL}/{complaint.id}"
    response = await client.patch(
        url,
        json={"severity": "critical", "category": "service"},
        headers={**org.east_manager.headers, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    read = response.json()
    assert read["severity"] == "critical" and read["category"] == "service"
    row = await stored(database, complaint.id)
    assert row.acknowledge_due_at - row.received_at == timedelta(hours=1)
    assert row.resolve_due_at - row.received_at == timedelta(hours=24)
    stale = await client.patch(
        url, json={"description": "x"}, headers={**org.east_rep1.headers, "If-Match": '"1"'}
    )
    problem(stale, 412, "version_conflict")
    for bad in ({"severity": None}, {"customer_id": str(uuid.uuid4())}, {"status": "closed"}):
        problem(
            await client.patch(url, json=bad, headers=org.east_rep1.headers),
            422,
            "validation_error",
        )
    [updated] = await events_of(database, complaint.id, "complaint.updated")
    assert updated.data["severity"] == "critical"


async def test_closed_complaints_change_only_for_the_director(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    complaint = await make_complaint(database, org.east_rep1, ComplaintStatus.CLOSED)
    url = f"{URL}/{complaint.id}"
    for person in (org.east_rep1, org.east_manager):
        refused = await client.patch(url, json={"description": "x"}, headers=person.headers)
        assert problem(refused, 409, "conflict")["reason"] == "complaint_closed"
        note = await client.post(f"{url}/updates", json={"message": "x"}, headers=person.headers)
        problem(note, 409, "conflict")
    allowed = await client.patch(url, json={"description": "Fixed."}, headers=org.director.headers)
    assert allowed.status_code == 200 and allowed.json()["description"] == "Fixed."


async def test_progress_updates_are_listed_in_order(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    complaint = await make_complaint(database, org.east_rep1)
    url = f"{URL}/{complaint.id}/updates"
    messages = [f"Update {n}" for n in range(5)]
    for message in messages:
        response = await client.post(url, json={"message": message}, headers=org.east_rep1.headers)
        assert response.status_code == 201, response.text
        assert response.json()["author_id"] == str(org.east_rep1.id)
        assert response.headers["location"] == url
    first = await client.get(url, params={"limit": 3}, headers=org.east_manager.headers)
    page = first.json()
    assert [u["message"] for u in page["items"]] == messages[:3]
    rest = await client.get(
        url, params={"cursor": page["next_cursor"]}, headers=org.east_manager.headers
    )
    assert [u["message"] for u in rest.json()["items"]] == messages[3:]
    assert rest.json()["next_cursor"] is None
    stamps = [u["created_at"] for u in page["items"] + rest.json()["items"]]
    assert stamps == sorted(stamps)
    assert len(await events_of(database, complaint.id, "complaint.update_added")) == 5
    problem(
        await client.post(url, json={"message": ""}, headers=org.east_rep1.headers),
        422,
        "validation_error",
    )
