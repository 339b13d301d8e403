"""Follow-ups: planned and done contacts with a customer, and the cadence they drive."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from app.db import Database
from app.models.customers import FollowUpRead
from app.models.types import utcnow
from tests.factories import Person, etag_of, listed_as_read, make_customer, make_org, problem
from tests.pipeline_helpers import make_opportunity

API = "/api/v1"


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def log(
    client: httpx.AsyncClient, person: Person, customer_id: uuid.UUID, **fields: Any
) -> httpx.Response:
    body = {"customer_id": str(customer_id), "kind": "call", **fields}
    return await client.post(f"{API}/follow-ups", json=body, headers=person.headers)


async def customer_of(
    client: httpx.AsyncClient, person: Person, customer_id: uuid.UUID
) -> dict[str, Any]:
    response = await client.get(f"{API}/customers/{customer_id}", headers=person.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_done_follow_up_defaults_to_now_and_moves_the_cadence(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    before = utcnow()
    response = await log(client, org.east_rep1, customer.id, summary="Intro call")
    after = utcnow()
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/api/v1/follow-ups/{body['id']}"
    assert (body["status"], body["kind"], body["owner_id"]) == (
        "done",
        "call",
        str(org.east_rep1.id),
    )
    occurred = at(body["occurred_at"])
    assert occurred is not None and before <= occurred <= after

    read = await customer_of(client, org.east_rep1, customer.id)
    assert at(read["last_follow_up_at"]) == occurred
    assert at(read["follow_up_due_at"]) == occurred + timedelta(days=30)


async def test_cadence_counts_from_the_last_follow_up(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1, name="Cadence Ltd")
    done = utcnow() - timedelta(days=3)
    logged = await log(client, org.east_rep1, customer.id, kind="visit", occurred_at=iso(done))
    assert logged.status_code == 201, logged.text
    read = await customer_of(client, org.east_rep1, customer.id)
    assert at(read["follow_up_due_at"]) == done + timedelta(days=30)
    response = await client.put(
        f"{API}/customers/{customer.id}/classification",
        json={"classification": "B", "reason": "Growing orders"},
        headers=org.east_manager.headers,
    )
    assert at(response.json()["follow_up_due_at"]) == done + timedelta(days=14)
    filtered = await client.get(
        f"{API}/customers", params={"classification": "B"}, headers=org.east_manager.headers
    )
    assert [c["id"] for c in filtered.json()["items"]] == [str(customer.id)]


async def test_older_follow_up_does_not_move_last_contact_back(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    recent = utcnow() - timedelta(days=2)
    await log(client, org.east_rep1, customer.id, occurred_at=iso(recent))
    old = await log(
        client,
        org.east_rep1,
        customer.id,
        kind="visit",
        occurred_at=iso(recent - timedelta(days=20)),
    )
    assert old.status_code == 201, old.text
    read = await customer_of(client, org.east_rep1, customer.id)
    assert at(read["last_follow_up_at"]) == recent
    assert at(read["follow_up_due_at"]) == recent + timedelta(days=30)


async def test_editing_or_deleting_the_latest_follow_up_recomputes_last_contact(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    older = utcnow() - timedelta(days=10)
    latest = utcnow() - timedelta(days=1)
    await log(client, org.east_rep1, customer.id, occurred_at=iso(older))
    newest = (await log(client, org.east_rep1, customer.id, occurred_at=iso(latest))).json()

    # The rep mistyped the date: the customer's last contact follows the correction.
    corrected = older - timedelta(days=5)
    patched = await client.patch(
        f"{API}/follow-ups/{newest['id']}",
        json={"occurred_at": iso(corrected)},
        headers=org.east_rep1.headers,
    )
    assert patched.status_code == 200, patched.text
    assert at((await customer_of(client, org.east_rep1, customer.id))["last_follow_up_at"]) == older

    await client.patch(
        f"{API}/follow-ups/{newest['id']}",
        json={"occurred_at": iso(latest)},
        headers=org.east_rep1.headers,
    )
    deleted = await client.delete(f"{API}/follow-ups/{newest['id']}", headers=org.east_rep1.headers)
    assert deleted.status_code == 204
    read = await customer_of(client, org.east_rep1, customer.id)
    assert at(read["last_follow_up_at"]) == older
    assert at(read["follow_up_due_at"]) == older + timedelta(days=30)


async def test_planning_and_completing(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    no_due = await log(client, org.east_rep1, customer.id, status="planned")
    assert problem(no_due, 422, "validation_error")["errors"][0]["loc"] == ["body", "due_at"]

    due = utcnow() + timedelta(days=2)
    planned = await log(client, org.east_rep1, customer.id, status="planned", due_at=iso(due))
    assert planned.status_code == 201, planned.text
    body = planned.json()
    assert (body["status"], at(body["due_at"]), body["occurred_at"]) == ("planned", due, None)
    # Planning is not contact: the customer's last follow-up stays empty.
    assert (await customer_of(client, org.east_rep1, customer.id))["last_follow_up_at"] is None

    path = f"{API}/follow-ups/{body['id']}"
    stale = await client.patch(
        path, json={"status": "done"}, headers={**org.east_rep1.headers, "If-Match": '"2"'}
    )
    problem(stale, 412, "version_conflict")
    done = await client.patch(
        path,
        json={"status": "done", "outcome": "Agreed a demo"},
        headers={**org.east_rep1.headers, "If-Match": '"1"'},
    )
    assert done.status_code == 200, done.text
    assert done.headers["etag"] == etag_of(FollowUpRead, done) and done.json()["version"] == 2
    occurred = at(done.json()["occurred_at"])
    assert occurred is not None and done.json()["outcome"] == "Agreed a demo"
    assert (
        at((await customer_of(client, org.east_rep1, customer.id))["last_follow_up_at"]) == occurred
    )

    back = await client.patch(
        path, json={"status": "planned", "due_at": None}, headers=org.east_rep1.headers
    )
    problem(back, 422, "validation_error")


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"occurred_at": "FUTURE"}, ["body", "occurred_at"]),
        ({"kind": "return_visit", "satisfaction": 6}, ["body", "satisfaction"]),
        ({"kind": "return_visit", "satisfaction": 0}, ["body", "satisfaction"]),
        ({"kind": "call", "satisfaction": 4}, ["body", "satisfaction"]),
        ({"kind": "telepathy"}, ["body", "kind"]),
        ({"status": "cancelled"}, ["body", "status"]),
        ({"occurred_at": "2026-01-01T08:00:00"}, ["body", "occurred_at"]),
        ({"occurred_at": 1700000000}, ["body", "occurred_at"]),
        ({"owner_id": "ME"}, ["body", "owner_id"]),
    ],
)
async def test_create_refuses_bad_fields(
    client: httpx.AsyncClient, database: Database, fields: dict[str, Any], loc: list[str]
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    if fields.get("occurred_at") == "FUTURE":
        fields = {"occurred_at": iso(utcnow() + timedelta(days=1))}
    if fields.get("owner_id") == "ME":
        fields = {"owner_id": str(org.east_rep2.id)}
    body = problem(await log(client, org.east_rep1, customer.id, **fields), 422, "validation_error")
    assert loc in [e["loc"][:2] for e in body["errors"]]
    listed = await client.get(f"{API}/follow-ups", headers=org.east_rep1.headers)
    assert listed.json()["items"] == []
    assert (await customer_of(client, org.east_rep1, customer.id))["last_follow_up_at"] is None


async def test_return_visit_carries_satisfaction(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    response = await log(client, org.east_rep1, customer.id, kind="return_visit", satisfaction=5)
    assert response.status_code == 201, response.text
    assert response.json()["satisfaction"] == 5
    path = f"{API}/follow-ups/{response.json()['id']}"
    problem(
        await client.patch(path, json={"kind": "visit"}, headers=org.east_rep1.headers),
        422,
        "validation_error",
    )
    assert (await client.get(path, headers=org.east_rep1.headers)).json()["kind"] == "return_visit"


@pytest.mark.parametrize(
    "field",
    ["id", "owner_id", "customer_id", "version", "created_at", "updated_at", "mood"],
)
async def test_patch_refuses_read_only_fields(
    client: httpx.AsyncClient, database: Database, field: str
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    other = await make_customer(database, org.east_rep1)
    created = (await log(client, org.east_rep1, customer.id, summary="Steady")).json()
    values = {
        "id": str(uuid.uuid4()),
        "owner_id": str(org.east_rep2.id),
        "customer_id": str(other.id),
        "version": 5,
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2020-01-01T00:00:00Z",
        "mood": "sunny",
    }
    path = f"{API}/follow-ups/{created['id']}"
    response = await client.patch(
        path, json={"summary": "Changed", field: values[field]}, headers=org.east_manager.headers
    )
    problem(response, 422, "validation_error")
    assert (await client.get(path, headers=org.east_rep1.headers)).json() == created


async def test_overdue_customers(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    late = await make_customer(database, org.east_rep1, name="Late Ltd")
    # Never followed up: due 30 days after creation, so not overdue.
    await make_customer(database, org.east_rep1, name="Fresh Ltd")
    recent = await make_customer(database, org.east_rep2, name="Recently Seen Ltd")
    long_ago = utcnow() - timedelta(days=40)
    await log(client, org.east_rep1, late.id, kind="visit", occurred_at=iso(long_ago))
    await log(client, org.east_rep2, recent.id, occurred_at=iso(utcnow() - timedelta(days=29)))
    read = await customer_of(client, org.east_rep1, late.id)
    assert at(read["follow_up_due_at"]) == long_ago + timedelta(days=30)

    async def names(person: Person, **params: Any) -> list[str]:
        response = await client.get(
            f"{API}/customers", params={"sort": "name", **params}, headers=person.headers
        )
        return [c["name"] for c in response.json()["items"]]

    assert await names(org.east_manager, overdue="true") == ["Late Ltd"]
    assert await names(org.east_rep1, overdue="true") == ["Late Ltd"]
    assert await names(org.east_rep2, overdue="true") == []
    assert await names(org.north_manager, overdue="true") == []
    assert await names(org.east_manager, overdue="false") == ["Fresh Ltd", "Recently Seen Ltd"]
    # A class with a shorter cadence makes a recently seen customer overdue too.
    await client.put(
        f"{API}/customers/{recent.id}/classification",
        json={"classification": "A", "reason": "Key account"},
        headers=org.east_manager.headers,
    )
    assert await names(org.director, overdue="true") == ["Late Ltd", "Recently Seen Ltd"]


async def test_customer_without_contact_for_180_days_is_dormant(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    sleepy = await make_customer(database, org.east_rep1, name="Sleepy Ltd")
    awake = await make_customer(database, org.east_rep1, name="Awake Ltd")
    await log(client, org.east_rep1, sleepy.id, occurred_at=iso(utcnow() - timedelta(days=200)))
    await log(client, org.east_rep1, awake.id, occurred_at=iso(utcnow() - timedelta(days=170)))
    assert (await customer_of(client, org.east_rep1, sleepy.id))["status"] == "dormant"
    assert (await customer_of(client, org.east_rep1, awake.id))["status"] == "prospect"
    for status, expected in [("dormant", [str(sleepy.id)]), ("prospect", [str(awake.id)])]:
        response = await client.get(
            f"{API}/customers", params={"status": status}, headers=org.east_manager.headers
        )
        assert [c["id"] for c in response.json()["items"]] == expected


async def test_list_filters(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    one = await make_customer(database, org.east_rep1, name="One Ltd")
    two = await make_customer(database, org.east_rep2, name="Two Ltd")
    now = utcnow()
    made: dict[str, str] = {}

    async def make(key: str, person: Person, customer: Any, **fields: Any) -> None:
        response = await log(client, person, customer.id, **fields)
        assert response.status_code == 201, response.text
        made[key] = response.json()["id"]

    await make("past_call", org.east_rep1, one, occurred_at=iso(now - timedelta(days=20)))
    await make(
        "overdue_visit",
        org.east_rep1,
        one,
        kind="visit",
        status="planned",
        due_at=iso(now - timedelta(days=1)),
    )
    await make(
        "future_meeting",
        org.east_rep2,
        two,
        kind="meeting",
        status="planned",
        due_at=iso(now + timedelta(days=3)),
    )
    await make(
        "manager_email",
        org.east_manager,
        two,
        kind="email",
        occurred_at=iso(now - timedelta(days=5)),
    )

    async def keys(**params: Any) -> set[str]:
        """Which of the follow-ups made above the list holds (by their names here)."""
        response = await client.get(
            f"{API}/follow-ups", params=params, headers=org.east_manager.headers
        )
        assert response.status_code == 200, response.text
        names = {v: k for k, v in made.items()}
        return {names[item["id"]] for item in response.json()["items"]}

    assert await keys() == set(made)
    assert await keys(overdue="true") == {"overdue_visit"}
    assert await keys(overdue="false") == {"past_call", "future_meeting", "manager_email"}
    assert await keys(customer_id=str(one.id)) == {"past_call", "overdue_visit"}
    assert await keys(owner_id=str(org.east_manager.id)) == {"manager_email"}
    assert await keys(owner_id=str(org.east_rep1.id), kind="visit") == {"overdue_visit"}
    assert await keys(status="planned") == {"overdue_visit", "future_meeting"}
    assert await keys(status="done") == {"past_call", "manager_email"}
    window = {"from": iso(now - timedelta(days=6)), "to": iso(now + timedelta(days=1))}
    assert await keys(**window) == {"overdue_visit", "manager_email"}
    assert await keys(**{"from": iso(now)}) == {"future_meeting"}
    assert await keys(to=iso(now - timedelta(days=10))) == {"past_call"}
    naive = await client.get(
        f"{API}/follow-ups",
        params={"from": "2026-01-01T00:00:00"},
        headers=org.east_manager.headers,
    )
    problem(naive, 422, "validation_error")
    problem(
        await client.get(
            f"{API}/follow-ups", params={"kind": "fax"}, headers=org.east_manager.headers
        ),
        422,
        "validation_error",
    )


async def test_follow_up_events(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    created = (await log(client, org.east_rep1, customer.id, summary="Hello")).json()
    types = ["follow_up.created"]
    for person, sees in [
        (org.east_rep1, True),
        (org.east_rep2, False),
        (org.east_manager, True),
        (org.north_manager, False),
    ]:
        feed = await client.get(f"{API}/events", params={"type": types}, headers=person.headers)
        items = feed.json()["items"]
        assert [(e["type"], e["entity_id"]) for e in items] == (
            [("follow_up.created", created["id"])] if sees else []
        )
        if sees:
            assert items[0]["data"]["summary"] == "Hello"


async def test_links_must_be_the_customers_own_records(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    ours = await make_opportunity(database, rep)
    theirs = await make_opportunity(database, rep)  # another customer of the same rep
    customer_id = ours.customer_id

    linked = await log(client, rep, customer_id, status="done", opportunity_id=str(ours.id))
    assert linked.status_code == 201, linked.text
    assert linked.json()["opportunity_id"] == str(ours.id)

    for field, value in (
        ("opportunity_id", theirs.id),
        ("contract_id", uuid.uuid4()),
        ("complaint_id", uuid.uuid4()),
    ):
        refused = await log(client, rep, customer_id, status="done", **{field: str(value)})
        assert problem(refused, 422, "validation_error")["errors"][0]["loc"] == ["body", field]
        changed = await client.patch(
            f"{API}/follow-ups/{linked.json()['id']}",
            json={field: str(value)},
            headers=rep.headers,
        )
        problem(changed, 422, "validation_error")

    # Nothing was stored or changed by the refusals.
    listed = await client.get(
        f"{API}/follow-ups", params={"customer_id": str(customer_id)}, headers=rep.headers
    )
    assert [(f["id"], f["opportunity_id"]) for f in listed.json()["items"]] == [
        (linked.json()["id"], str(ours.id))
    ]


async def test_a_listed_follow_up_is_exactly_its_read_answer(
    client: httpx.AsyncClient, database: Database
) -> None:
    """The list writes its page from column values (``app.answers``), not through the read
    schema: each item must be, field for field, what reading that follow-up answers. One
    has every field set (linked, a return visit with its score, a next date on a whole
    second), one is planned with the fewest."""
    org = await make_org(database)
    rep = org.east_rep1
    opportunity = await make_opportunity(database, rep)
    full = await log(
        client,
        rep,
        opportunity.customer_id,
        kind="return_visit",
        status="done",
        occurred_at="2026-03-04T05:06:07.089Z",
        summary='回访：满意 "very"',
        outcome="Reorder\nnext month",
        next_follow_up_at="2027-01-02T03:04:05Z",
        opportunity_id=str(opportunity.id),
        satisfaction=4,
    )
    planned = await log(
        client,
        rep,
        opportunity.customer_id,
        status="planned",
        due_at=iso(utcnow() + timedelta(days=2)),
    )
    assert full.status_code == planned.status_code == 201, planned.text

    items = await listed_as_read(client, rep, "follow-ups")
    assert set(items) == {full.json()["id"], planned.json()["id"]}
    item = items[full.json()["id"]]
    assert (item["occurred_at"], item["next_follow_up_at"]) == (
        "2026-03-04T05:06:07.089000Z",
        "2027-01-02T03:04:05Z",
    )
    assert (item["kind"], item["satisfaction"]) == ("return_visit", 4)
    assert items[planned.json()["id"]]["occurred_at"] is None
