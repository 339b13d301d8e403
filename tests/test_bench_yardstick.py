"""The load benchmark's minimal app does the same work as the app (``bench/minimal_app.py``).

``bench.load`` measures each route against its least implementation, hand-written with
asyncpg. For the writes that comparison is fair only while the yardstick writes what the
app writes: if the app came to write another row, audit entry or event and the yardstick
did not, the app would look slower than it is (and the other way round). Each test makes the
same request of both apps, on the same database, and compares the answers and every row
written. PostgreSQL only: the yardstick speaks asyncpg.
"""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.config import get_settings
from app.db import Database
from app.models.customers import FollowUpRead
from app.models.pipeline import OpportunityRead, Stage
from app.models.types import utcnow
from bench.bulk import plain_dsn
from tests.conftest import IS_POSTGRES
from tests.factories import Person, etag_of, make_customer, make_org
from tests.pipeline_helpers import make_opportunity

pytestmark = pytest.mark.skipif(not IS_POSTGRES, reason="the minimal app speaks asyncpg")

API = "/api/v1"
# What differs between two records by nature: their own identity and their times.
_OWN = {
    *("id", "created_at", "updated_at", "occurred_at", "customer_id", "customer_name"),
    *("title", "at"),
}


@pytest.fixture
async def minimal(
    migrated_url: str, database: Database, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the minimal app, on the tests' database and key."""
    monkeypatch.setenv("SALESDESK_SECRET_KEY", get_settings().signing_key())
    monkeypatch.setenv("BENCH_MINIMAL_DSN", plain_dsn(migrated_url))
    monkeypatch.delenv("BENCH_MINIMAL_SUMMARY", raising=False)
    module = sys.modules.get("bench.minimal_app")
    # The module reads its settings when imported: import it again with these.
    module = importlib.reload(module) if module else importlib.import_module("bench.minimal_app")
    app = module.app
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://minimal") as client,
    ):
        yield client


async def rows(database: Database, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        return [dict(row._mapping) for row in await connection.execute(text(sql), params)]


def without_own(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if key not in _OWN}


async def audit_of(
    database: Database, since: datetime, *entity_ids: uuid.UUID
) -> list[tuple[Any, ...]]:
    """Each audit entry about these rows since ``since``: what was done to which kind of
    row, and what it says changed."""
    found = await rows(
        database,
        "SELECT action, entity_type, before, after FROM audit_log"
        " WHERE entity_id = ANY(:ids) AND at >= :since ORDER BY at, action",
        ids=list(entity_ids),
        since=since,
    )
    return [(e["action"], e["entity_type"], _shape(e["before"]), _shape(e["after"])) for e in found]


def _shape(snapshot: dict[str, Any] | None) -> Any:
    """A snapshot's fields, with the values that are not a record's own."""
    if snapshot is None:
        return None
    return sorted(
        (key, None if key in _OWN or key.endswith("_at") else value)
        for key, value in snapshot.items()
    )


async def events_of(database: Database, entity_id: uuid.UUID) -> list[tuple[Any, ...]]:
    found = await rows(
        database,
        "SELECT type, entity_type, owner_id, region_id, data FROM events"
        " WHERE entity_id = :id ORDER BY seq",
        id=entity_id,
    )
    return [
        (e["type"], e["entity_type"], e["owner_id"], e["region_id"], _shape(e["data"]))
        for e in found
    ]


async def customer_row(database: Database, customer_id: uuid.UUID) -> dict[str, Any]:
    return (await rows(database, "SELECT * FROM customers WHERE id = :id", id=customer_id))[0]


async def test_a_follow_up_writes_the_same_rows(
    client: httpx.AsyncClient, minimal: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    ours, twins = await make_customer(database, rep), await make_customer(database, rep)
    body = {"kind": "call", "status": "done", "summary": "Called.", "outcome": "Visit."}
    since = utcnow()

    answers = {}
    for api, customer in ((client, ours), (minimal, twins)):
        response = await api.post(
            f"{API}/follow-ups", json={**body, "customer_id": str(customer.id)}, headers=rep.headers
        )
        assert response.status_code == 201, response.text
        answer = response.json()
        assert response.headers["location"] == f"/api/v1/follow-ups/{answer['id']}"
        assert response.headers["etag"] == etag_of(FollowUpRead, response)
        assert response.json()["version"] == 1
        answers[customer.id] = answer
    app_answer, twin_answer = answers[ours.id], answers[twins.id]
    assert app_answer.keys() == twin_answer.keys()
    assert without_own(app_answer) == without_own(twin_answer)

    written = {}
    for customer in (ours, twins):
        answer = answers[customer.id]
        follow_up_id = uuid.UUID(answer["id"])
        [row] = await rows(database, "SELECT * FROM follow_ups WHERE id = :id", id=follow_up_id)
        after = await customer_row(database, customer.id)
        occurred = datetime.fromisoformat(answer["occurred_at"])
        # The customer's last contact and next due date moved, under a new version.
        assert (after["version"], after["last_follow_up_at"]) == (customer.version + 1, occurred)
        assert after["follow_up_due_at"] == occurred + timedelta(days=30)
        written[customer.id] = (
            without_own(row),
            await audit_of(database, since, follow_up_id, customer.id),
            await events_of(database, follow_up_id),
        )
    assert written[ours.id] == written[twins.id]
    follow_up, audit, events = written[ours.id]
    assert follow_up["customer_owner_id"] == rep.id
    assert [entry[:2] for entry in audit] == [("create", "follow_ups"), ("update", "customers")]
    assert [event[0] for event in events] == ["follow_up.created"]


async def test_a_stage_move_and_its_correction_write_the_same_rows(
    client: httpx.AsyncClient, minimal: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    ours, twins = await make_opportunity(database, rep), await make_opportunity(database, rep)
    moves = ({"to": "contacted"}, {"to": "lead", "note": "Moved too early; no call yet."})
    since = utcnow()

    answers: dict[uuid.UUID, list[dict[str, Any]]] = {ours.id: [], twins.id: []}
    for api, opp in ((client, ours), (minimal, twins)):
        for version, move in enumerate(moves, start=2):
            path = f"{API}/opportunities/{opp.id}/transitions"
            response = await api.post(path, json=move, headers=rep.headers)
            assert response.status_code == 200, response.text
            assert response.headers["etag"] == etag_of(OpportunityRead, response)
            assert response.json()["version"] == version
            answers[opp.id].append(response.json())
        # A move the rules do not allow changes nothing, in both.
        response = await api.post(path, json={"to": "lead", "note": "Again."}, headers=rep.headers)
        assert response.status_code == 409
    for app_answer, twin_answer in zip(answers[ours.id], answers[twins.id], strict=True):
        assert app_answer.keys() == twin_answer.keys()
        assert without_own(app_answer) == without_own(twin_answer)
    assert [a["stage"] for a in answers[ours.id]] == [Stage.CONTACTED, Stage.LEAD]

    written = {}
    for opp in (ours, twins):
        changes = await rows(
            database,
            "SELECT from_state, to_state, note, actor_id, owner_id, region_id,"
            " from_state_at IS NOT NULL AS entered_known, next_state_at IS NOT NULL AS moved_on"
            " FROM state_changes WHERE entity_id = :id ORDER BY at",
            id=opp.id,
        )
        [stored] = await rows(
            database, "SELECT stage, version FROM opportunities WHERE id = :id", id=opp.id
        )
        written[opp.id] = (
            changes,
            stored,
            await audit_of(database, since, opp.id),
            await events_of(database, opp.id),
        )
    assert written[ours.id] == written[twins.id]
    changes, stored, audit, events = written[ours.id]
    assert [(c["from_state"], c["to_state"], c["entered_known"]) for c in changes] == [
        ("lead", "contacted", True),
        ("contacted", "lead", True),
    ]
    assert stored == {"stage": "lead", "version": 3}
    assert [entry[2:] for entry in audit] == [
        ([("stage", "lead")], [("stage", "contacted")]),
        ([("stage", "contacted")], [("stage", "lead")]),
    ]
    assert [event[0] for event in events] == ["opportunity.stage_changed"] * 2


async def test_the_first_page_of_customers_is_the_same(
    client: httpx.AsyncClient, minimal: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep: Person = org.east_rep1
    for _ in range(2):
        await make_customer(database, rep)
    long_unseen = await make_customer(database, rep)
    await make_customer(database, org.east_rep2)  # not in the rep's scope
    async with database.engine.begin() as connection:
        # Created 200 days ago and never followed up: dormant (derived, not stored).
        await connection.execute(
            text("UPDATE customers SET created_at = now() - interval '200 days' WHERE id = :id"),
            {"id": long_unseen.id},
        )

    for limit in (50, 2):
        path = f"{API}/customers?limit={limit}"
        ours = await client.get(path, headers=rep.headers)
        twins = await minimal.get(path, headers=rep.headers)
        assert ours.status_code == twins.status_code == 200
        assert ours.json() == twins.json()
        if limit == 50:
            statuses = [customer["status"] for customer in ours.json()["items"]]
            assert statuses == ["prospect", "prospect", "dormant"]
    assert len(ours.json()["items"]) == 2 and ours.json()["next_cursor"]
