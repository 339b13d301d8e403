"""The complaint workflow: every move of the table for every role (allowed moves succeed,
missing moves are 409 with ``current`` and ``allowed``, other roles' moves 403), the fields
each move needs and records, and its events."""

from __future__ import annotations

import itertools

import httpx
import pytest

from app.db import Database
from app.models.complaints import ComplaintRead, ComplaintStatus
from app.models.people import Role
from app.services.complaints import COMPLAINT_TRANSITIONS
from tests.complaint_helpers import URL, events_of, make_complaint, stored
from tests.factories import Org, Person, etag_of, make_org, problem

ROLES = (Role.REP, Role.REGIONAL_MANAGER, Role.DIRECTOR)
EVERYTHING = {
    "note": "Checked with the customer.",
    "resolution": "replacement",
    "satisfaction": 4,
    "root_cause": "Thin packaging.",
    "corrective_action": "Double-walled boxes.",
}


def _caller(org: Org, role: Role) -> Person:
    return {
        Role.REP: org.east_rep1,
        Role.REGIONAL_MANAGER: org.east_manager,
        Role.DIRECTOR: org.director,
    }[role]


@pytest.mark.parametrize(
    ("current", "to", "role"),
    list(itertools.product(list(ComplaintStatus), list(ComplaintStatus), ROLES)),
)
async def test_complaint_move(
    client: httpx.AsyncClient,
    database: Database,
    current: ComplaintStatus,
    to: ComplaintStatus,
    role: Role,
) -> None:
    org = await make_org(database)
    complaint = await make_complaint(database, org.east_rep1, current)
    caller = _caller(org, role)

    response = await client.post(
        f"{URL}/{complaint.id}/transitions",
        json={"to": to, **EVERYTHING},
        headers={**caller.headers, "If-Match": '"1"'},
    )

    moves = COMPLAINT_TRANSITIONS.get(current, {})
    allowed = [state for state, rule in moves.items() if role in rule.roles]
    rule = moves.get(to)
    if rule is None:
        body = problem(response, 409, "invalid_transition")
        assert body["current"] == current and body["allowed"] == allowed
        assert (await stored(database, complaint.id)).status == current
    elif role not in rule.roles:
        problem(response, 403, "forbidden")
        assert (await stored(database, complaint.id)).status == current
    else:
        assert response.status_code == 200, response.text
        assert response.json()["status"] == to
        assert response.headers["etag"] == etag_of(ComplaintRead, response)
        assert response.json()["version"] == 2
        types = [e.type for e in await events_of(database, complaint.id)]
        assert types == ["complaint.status_changed", *([rule.event] if rule.event else [])]
    options = await client.get(f"{URL}/{complaint.id}/transitions", headers=caller.headers)
    state = to if response.status_code == 200 else current
    expected = [s for s, r in COMPLAINT_TRANSITIONS.get(state, {}).items() if role in r.roles]
    assert [o["to"] for o in options.json()] == expected


@pytest.mark.parametrize(
    ("current", "to", "needs"),
    [
        (ComplaintStatus.INVESTIGATING, ComplaintStatus.RESOLVED, ["resolution", "note"]),
        (ComplaintStatus.RESOLVED, ComplaintStatus.INVESTIGATING, ["note"]),
        (
            ComplaintStatus.RESOLVED,
            ComplaintStatus.CLOSED,
            ["satisfaction", "root_cause", "corrective_action"],
        ),
    ],
)
async def test_moves_need_their_fields(
    client: httpx.AsyncClient,
    database: Database,
    current: ComplaintStatus,
    to: ComplaintStatus,
    needs: list[str],
) -> None:
    org = await make_org(database)
    complaint = await make_complaint(database, org.east_rep1, current)
    url = f"{URL}/{complaint.id}/transitions"
    for missing in needs:
        fields = {k: v for k, v in EVERYTHING.items() if k != missing}
        response = await client.post(url, json={"to": to, **fields}, headers=org.east_rep1.headers)
        body = problem(response, 422, "validation_error")
        assert body["errors"][0]["loc"] == ["body", missing]
    options = (await client.get(url, headers=org.east_rep1.headers)).json()
    assert {o["to"]: o["needs"] for o in options}[to] == needs


@pytest.mark.parametrize("satisfaction", [0, 6, "4", 4.5, True])
async def test_satisfaction_is_a_score_from_1_to_5(
    client: httpx.AsyncClient, database: Database, satisfaction: object
) -> None:
    org = await make_org(database)
    complaint = await make_complaint(database, org.east_rep1, ComplaintStatus.RESOLVED)
    response = await client.post(
        f"{URL}/{complaint.id}/transitions",
        json={"to": "closed", **EVERYTHING, "satisfaction": satisfaction},
        headers=org.east_rep1.headers,
    )
    problem(response, 422, "validation_error")


async def test_the_whole_flow_records_each_step(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    complaint = await make_complaint(database, org.east_rep1)
    url = f"{URL}/{complaint.id}/transitions"
    rep = org.east_rep1.headers

    async def move(headers: dict[str, str], to: str, **fields: object) -> dict:
        response = await client.post(url, json={"to": to, **fields}, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    acknowledged = await move(rep, "acknowledged", note="Apologised by phone.")
    assert acknowledged["acknowledged_at"] is not None
    await move(rep, "investigating")
    resolved = await move(rep, "resolved", resolution="repair", note="Technician replaced a seal.")
    assert resolved["resolution"] == "repair"
    assert resolved["resolution_details"] == "Technician replaced a seal."
    assert resolved["resolved_at"] is not None
    reopened = await move(rep, "investigating", note="Leaks again.")
    assert reopened["resolution"] is None and reopened["resolved_at"] is None
    await move(rep, "resolved", resolution="replacement", note="New pump sent.")
    closed = await move(
        rep,
        "closed",
        satisfaction=5,
        root_cause="Seal batch defect.",
        corrective_action="Supplier audit.",
    )
    assert (closed["satisfaction"], closed["root_cause"], closed["corrective_action"]) == (
        5,
        "Seal batch defect.",
        "Supplier audit.",
    )
    assert closed["closed_at"] is not None and closed["breached"] is False
    row = await stored(database, complaint.id)
    assert (row.status, row.satisfaction, row.resolution) == ("closed", 5, "replacement")

    # Closed is final for the manager; the director reopens it.
    refused = await client.post(
        url, json={"to": "investigating", "note": "x"}, headers=org.east_manager.headers
    )
    problem(refused, 403, "forbidden")
    again = await move(org.director.headers, "investigating", note="Customer escalated.")
    assert again["satisfaction"] is None and again["closed_at"] is None

    types = [e.type for e in await events_of(database, complaint.id)]
    lifecycle = [t for t in types if t != "complaint.status_changed"]
    assert lifecycle == [
        "complaint.acknowledged",
        "complaint.resolved",
        "complaint.reopened",
        "complaint.resolved",
        "complaint.closed",
        "complaint.reopened",
    ]
    assert types.count("complaint.status_changed") == 7


async def test_a_stale_if_match_is_refused(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    complaint = await make_complaint(database, org.east_rep1)
    response = await client.post(
        f"{URL}/{complaint.id}/transitions",
        json={"to": "acknowledged"},
        headers={**org.east_rep1.headers, "If-Match": '"7"'},
    )
    problem(response, 412, "version_conflict")
    assert (await stored(database, complaint.id)).status == "received"
