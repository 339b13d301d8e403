"""Complaint SLAs: exact due times, breaches found at intake, on read, on transition and in
SQL, and escalation that happens exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from app.db import Database
from app.models.complaints import ComplaintStatus, Severity
from app.models.platform import AuditEntry
from app.models.types import utcnow
from app.services.complaint_sla import due_times
from app.services.department import ComplaintSla, DepartmentSettings
from tests.complaint_helpers import URL, events_of, iso, log_complaint, make_complaint, stored
from tests.factories import Org, make_customer, make_org

HOURS = {
    Severity.CRITICAL: (1, 24),
    Severity.HIGH: (4, 72),
    Severity.MEDIUM: (8, 120),
    Severity.LOW: (24, 240),
}


@pytest.fixture
async def org(database: Database) -> Org:
    return await make_org(database)


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize("severity", list(Severity))
async def test_due_times_are_exact_for_every_severity(
    client: httpx.AsyncClient, database: Database, org: Org, severity: Severity
) -> None:
    customer = await make_customer(database, org.east_rep1)
    received = (utcnow() - timedelta(minutes=20)).replace(microsecond=123456)
    created = await log_complaint(
        client, org.east_rep1, customer.id, severity=severity, received_at=iso(received)
    )
    acknowledge, resolve = HOURS[severity]
    assert parse(created["received_at"]) == received
    assert parse(created["acknowledge_due_at"]) == received + timedelta(hours=acknowledge)
    assert parse(created["resolve_due_at"]) == received + timedelta(hours=resolve)
    assert created["breached"] is False and created["escalated_at"] is None
    row = await stored(database, created["id"])
    assert row.acknowledge_due_at == received + timedelta(hours=acknowledge)
    assert row.resolve_due_at == received + timedelta(hours=resolve)


def test_due_times_come_from_the_settings() -> None:
    settings = DepartmentSettings()
    settings.complaint_slas["low"] = ComplaintSla(acknowledge_hours=2, resolve_hours=30)
    received = datetime.fromisoformat("2026-03-01T23:30:00+00:00")
    assert due_times(settings, "low", received) == (
        datetime.fromisoformat("2026-03-02T01:30:00+00:00"),
        datetime.fromisoformat("2026-03-03T05:30:00+00:00"),
    )


async def test_intake_reads_the_settings_in_force(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    slas = DepartmentSettings().model_dump(mode="json")["complaint_slas"]
    slas["medium"] = {"acknowledge_hours": 3, "resolve_hours": 50}
    changed = await client.patch(
        "/api/v1/settings", json={"complaint_slas": slas}, headers=org.director.headers
    )
    assert changed.status_code == 200, changed.text
    customer = await make_customer(database, org.east_rep1)
    created = await log_complaint(client, org.east_rep1, customer.id)
    received = parse(created["received_at"])
    assert parse(created["acknowledge_due_at"]) == received + timedelta(hours=3)
    assert parse(created["resolve_due_at"]) == received + timedelta(hours=50)


async def test_high_complaint_logged_five_hours_late_is_breached_and_escalated_at_once(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    received = utcnow() - timedelta(hours=5)
    created = await log_complaint(
        client,
        org.east_rep1,
        customer.id,
        channel="phone",
        severity="high",
        received_at=iso(received),
    )

    assert created["breached"] is True
    assert created["escalated_at"] is not None
    row = await stored(database, created["id"])
    assert row.escalated_at is not None and row.version == 1
    types = [e.type for e in await events_of(database, created["id"])]
    assert types == ["complaint.created", "complaint.escalated"]
    [escalated] = await events_of(database, created["id"], "complaint.escalated")
    assert escalated.data["notify_user_ids"] == [str(org.east_manager.id)]  # not the director
    assert escalated.data["breaches"] == ["acknowledge"]
    assert escalated.region_id == org.east.id
    # The manager reads it in the event feed; another region's manager does not.
    feed = await client.get(
        "/api/v1/events", params={"type": "complaint.escalated"}, headers=org.east_manager.headers
    )
    assert [e["entity_id"] for e in feed.json()["items"]] == [created["id"]]
    other = await client.get(
        "/api/v1/events", params={"type": "complaint.escalated"}, headers=org.north_manager.headers
    )
    assert other.json()["items"] == []
    listed = await client.get(URL, params={"breached": "true"}, headers=org.east_manager.headers)
    assert [c["id"] for c in listed.json()["items"]] == [created["id"]]
    async with database.session(write=False) as session:
        audit = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.entity_id == row.id).order_by(AuditEntry.at)
            )
        ).all()
    assert [(a.action, a.after and a.after.get("escalated_at") is not None) for a in audit] == [
        ("create", False),
        ("update", True),
    ]


async def test_critical_breach_notifies_the_director_too(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.north_rep)
    created = await log_complaint(
        client,
        org.north_rep,
        customer.id,
        severity="critical",
        received_at=iso(utcnow() - timedelta(hours=2)),
    )
    [escalated] = await events_of(database, created["id"], "complaint.escalated")
    assert set(escalated.data["notify_user_ids"]) == {
        str(org.north_manager.id),
        str(org.director.id),
    }


async def test_a_breach_found_on_read_escalates_once(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    # Logged in time; its acknowledge time passed while nobody looked.
    complaint = await make_complaint(
        database, org.east_rep1, received_at=utcnow() - timedelta(hours=9)
    )
    listed = await client.get(URL, params={"breached": "true"}, headers=org.east_rep1.headers)
    [item] = listed.json()["items"]
    assert item["breached"] is True and item["escalated_at"] is None
    first = await client.get(f"{URL}/{complaint.id}", headers=org.east_rep1.headers)
    assert first.status_code == 200, first.text
    assert first.json()["escalated_at"] is not None
    # Escalation is bookkeeping: the version stays (the ETag shows it: tests/test_etags.py).
    assert first.json()["version"] == 1 and first.headers["etag"].startswith('"1-')
    second = await client.get(f"{URL}/{complaint.id}", headers=org.east_rep1.headers)
    assert second.json()["escalated_at"] == first.json()["escalated_at"]
    assert len(await events_of(database, complaint.id, "complaint.escalated")) == 1


async def test_acknowledging_late_is_a_breach_and_escalates(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    late = await make_complaint(
        database,
        org.east_rep1,
        severity=Severity.CRITICAL,
        received_at=utcnow() - timedelta(hours=2),
    )
    on_time = await make_complaint(database, org.east_rep1)
    for complaint, breached in ((late, True), (on_time, False)):
        response = await client.post(
            f"{URL}/{complaint.id}/transitions",
            json={"to": "acknowledged"},
            headers={**org.east_rep1.headers, "If-Match": '"1"'},
        )
        assert response.status_code == 200, response.text
        assert response.json()["breached"] is breached
        assert (response.json()["escalated_at"] is not None) is breached
        escalations = await events_of(database, complaint.id, "complaint.escalated")
        assert len(escalations) == (1 if breached else 0)
    # Acknowledged late stays breached after the acknowledgement.
    again = await client.get(URL, params={"breached": "true"}, headers=org.east_rep1.headers)
    assert [c["id"] for c in again.json()["items"]] == [str(late.id)]


async def test_breached_filter_and_due_time_sorts_are_sql(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    rep = org.east_rep1
    now = utcnow()
    on_time = await make_complaint(database, rep, received_at=now - timedelta(hours=1))
    unacknowledged = await make_complaint(database, rep, received_at=now - timedelta(hours=9))
    # Acknowledged (a minute after receipt) but its resolve time passed while investigating.
    unresolved = await make_complaint(
        database,
        rep,
        ComplaintStatus.INVESTIGATING,
        severity=Severity.CRITICAL,
        received_at=now - timedelta(hours=30),
    )
    # Handled within its times long ago: closed and never breached.
    closed_in_time = await make_complaint(
        database, rep, ComplaintStatus.CLOSED, received_at=now - timedelta(days=30)
    )

    async def ids(**params: str) -> list[str]:
        response = await client.get(URL, params=params, headers=rep.headers)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    breached = {str(unacknowledged.id), str(unresolved.id)}
    assert set(await ids(breached="true")) == breached
    assert set(await ids(breached="false")) == {str(on_time.id), str(closed_in_time.id)}
    assert set(await ids(breached="true", severity="critical")) == {str(unresolved.id)}
    by_ack = [closed_in_time, unresolved, unacknowledged, on_time]
    assert await ids(sort="acknowledge_due_at") == [str(c.id) for c in by_ack]
    assert await ids(sort="-received_at") == [str(c.id) for c in reversed(by_ack)]
    # resolve due: critical +24 h from now-30 h comes before medium +120 h ones.
    order = await ids(sort="resolve_due_at", limit="2")
    assert order == [str(closed_in_time.id), str(unresolved.id)]
    pages: list[str] = []
    cursor = None
    while True:
        params = {"sort": "-acknowledge_due_at", "limit": "1"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(URL, params=params, headers=rep.headers)).json()
        pages += [c["id"] for c in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert pages == [str(c.id) for c in reversed(by_ack)]


async def test_reopening_after_the_resolve_time_is_a_breach(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    complaint = await make_complaint(
        database,
        org.east_rep1,
        ComplaintStatus.RESOLVED,
        severity=Severity.CRITICAL,
        received_at=utcnow() - timedelta(hours=25),
    )
    assert (
        await client.get(URL, params={"breached": "true"}, headers=org.director.headers)
    ).json()["items"] == []
    response = await client.post(
        f"{URL}/{complaint.id}/transitions",
        json={"to": "investigating", "note": "Customer says it broke again."},
        headers=org.east_rep1.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["breached"] is True and response.json()["resolved_at"] is None
    [escalated] = await events_of(database, complaint.id, "complaint.escalated")
    assert escalated.data["breaches"] == ["resolve"]
