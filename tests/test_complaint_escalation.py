"""A breach, once found, stays; severity and received_at change only before acknowledgement,
by a manager; a manager escalates a complaint by hand."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from app.db import Database
from app.models.complaints import Complaint, ComplaintStatus, Severity
from app.models.platform import AuditEntry
from app.models.types import utcnow
from app.services.complaint_sla import sweep
from tests.complaint_helpers import URL, events_of, iso, log_complaint, make_complaint, stored
from tests.factories import Org, make_customer, make_org, problem


@pytest.fixture
async def org(database: Database) -> Org:
    return await make_org(database)


async def _breach_ids(client: httpx.AsyncClient, org: Org) -> list[str]:
    listed = await client.get(URL, params={"breached": "true"}, headers=org.east_manager.headers)
    assert listed.status_code == 200, listed.text
    return [c["id"] for c in listed.json()["items"]]


async def _sla_breaches(client: httpx.AsyncClient, org: Org) -> int:
    summary = await client.get(
        "/api/v1/performance/summary",
        params={
            "period": str(utcnow().year),
            "scope": "rep",
            "scope_id": str(org.east_rep1.id),
        },
        headers=org.east_manager.headers,
    )
    assert summary.status_code == 200, summary.text
    return summary.json()["sla_breaches"]


async def test_a_breach_survives_a_lower_severity_and_a_later_received_at(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    created = await log_complaint(
        client,
        org.east_rep1,
        customer.id,
        severity="critical",
        received_at=iso(utcnow() - timedelta(hours=2)),
    )
    assert created["breached"] is True and created["escalated_at"] is not None
    breached_at = created["breached_at"]
    assert breached_at is not None
    url = f"{URL}/{created['id']}"

    # The rep may change neither: they decide the clock the rep is judged by.
    for change in ({"severity": "low"}, {"received_at": iso(utcnow())}):
        problem(
            await client.patch(url, json=change, headers=org.east_rep1.headers), 403, "forbidden"
        )
    # Other details stay the rep's, and sending the current severity back changes nothing.
    same = await client.patch(
        url, json={"severity": "critical", "category": "service"}, headers=org.east_rep1.headers
    )
    assert same.status_code == 200, same.text

    # The manager may, before acknowledgement; the breach stays, everywhere.
    lowered = await client.patch(
        url,
        json={"severity": "low", "received_at": iso(utcnow())},
        headers=org.east_manager.headers,
    )
    assert lowered.status_code == 200, lowered.text
    read = lowered.json()
    assert read["severity"] == "low"
    assert read["breached"] is True and read["breached_at"] == breached_at
    assert (await client.get(url, headers=org.east_rep1.headers)).json()["breached"] is True
    assert await _breach_ids(client, org) == [created["id"]]
    assert await _sla_breaches(client, org) == 1
    on_time = await client.get(URL, params={"breached": "false"}, headers=org.east_manager.headers)
    assert on_time.json()["items"] == []
    async with database.session(write=False) as session:
        audit = (
            await session.scalars(
                select(AuditEntry)
                .where(
                    AuditEntry.entity_id == uuid.UUID(read["id"]),
                    AuditEntry.actor_id == org.east_manager.id,
                )
                .order_by(AuditEntry.at)
            )
        ).all()
    assert [(a.before["severity"], a.after["severity"]) for a in audit] == [("critical", "low")]


async def test_a_breach_not_yet_recorded_is_kept_when_the_severity_moves(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    # Medium: acknowledge within 8 hours. Nine hours on, nobody has read or swept it yet.
    complaint = await make_complaint(
        database, org.east_rep1, received_at=utcnow() - timedelta(hours=9)
    )
    assert (await stored(database, complaint.id)).breached_at is None
    response = await client.patch(
        f"{URL}/{complaint.id}", json={"severity": "low"}, headers=org.director.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["breached"] is True
    assert (await stored(database, complaint.id)).breached_at is not None
    assert len(await events_of(database, complaint.id, "complaint.escalated")) == 1


async def test_severity_and_received_at_are_fixed_once_acknowledged(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    complaint = await make_complaint(database, org.east_rep1, ComplaintStatus.ACKNOWLEDGED)
    url = f"{URL}/{complaint.id}"
    for who in (org.east_manager, org.director):
        for change in ({"severity": "critical"}, {"received_at": iso(utcnow())}):
            refused = await client.patch(url, json=change, headers=who.headers)
            assert problem(refused, 409, "conflict")["reason"] == "complaint_acknowledged"
    row = await stored(database, complaint.id)
    assert (row.severity, row.version) == (Severity.MEDIUM, 1)


async def test_a_manager_escalates_by_hand_once(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    complaint = await make_complaint(database, org.east_rep1, severity=Severity.CRITICAL)
    url = f"{URL}/{complaint.id}/escalate"
    note = {"note": "Key account; the plant is standing still."}

    problem(await client.post(url, json=note, headers=org.east_rep1.headers), 403, "forbidden")
    problem(await client.post(url, json=note, headers=org.north_manager.headers), 404, "not_found")
    for bad in ({}, {"note": ""}):
        problem(
            await client.post(url, json=bad, headers=org.east_manager.headers),
            422,
            "validation_error",
        )
    assert (await stored(database, complaint.id)).escalated_at is None

    response = await client.post(url, json=note, headers=org.east_manager.headers)
    assert response.status_code == 200, response.text
    read = response.json()
    assert read["escalated_at"] is not None and read["breached"] is False
    assert read["version"] == 1 and response.headers["etag"].startswith('"1-')
    [event] = await events_of(database, complaint.id, "complaint.escalated")
    assert event.data["escalated_by_id"] == str(org.east_manager.id)
    assert event.data["note"] == note["note"]
    assert event.data["breaches"] == []
    assert set(event.data["notify_user_ids"]) == {str(org.east_manager.id), str(org.director.id)}

    again = await client.post(url, json=note, headers=org.director.headers)
    assert problem(again, 409, "conflict")["reason"] == "already_escalated"

    # It breaches later: the breach is recorded, and not escalated a second time.
    async with database.session() as session, session.begin():
        await session.execute(
            update(Complaint)
            .where(Complaint.id == complaint.id)
            .values(acknowledge_due_at=utcnow() - timedelta(minutes=1))
        )
    await sweep(database)
    row = await stored(database, complaint.id)
    assert row.breached_at is not None and row.escalated_at.isoformat() is not None
    assert len(await events_of(database, complaint.id, "complaint.escalated")) == 1
    assert await _breach_ids(client, org) == [str(complaint.id)]


async def test_a_closed_or_breach_escalated_complaint_is_not_escalated_by_hand(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    closed = await make_complaint(database, org.east_rep1, ComplaintStatus.CLOSED)
    refused = await client.post(
        f"{URL}/{closed.id}/escalate", json={"note": "x"}, headers=org.director.headers
    )
    assert problem(refused, 409, "conflict")["reason"] == "complaint_closed"

    late = await make_complaint(database, org.east_rep1, received_at=utcnow() - timedelta(hours=9))
    await sweep(database)
    refused = await client.post(
        f"{URL}/{late.id}/escalate", json={"note": "x"}, headers=org.east_manager.headers
    )
    assert problem(refused, 409, "conflict")["reason"] == "already_escalated"
