"""The event feed and the audit log: scoped like their records, complete, free of secrets."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from alembic import command
from app import events, pending_rows
from app.db import Database
from app.migrations import alembic_config
from app.models.contracts import ContractStatus
from app.models.people import Region, User
from app.models.platform import AuditEntry, Event
from app.models.types import utcnow
from app.services.activity import GAP_GRACE
from tests.complaint_helpers import make_complaint
from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL
from tests.contract_helpers import make_contract
from tests.factories import Org, Person, make_org, problem

EVENTS = "/api/v1/events"
AUDIT = "/api/v1/audit-log"
CUSTOMERS = "/api/v1/customers"


@pytest.fixture
async def org(database: Database) -> Org:
    return await make_org(database)


async def create_customer(client: httpx.AsyncClient, person: Person, name: str) -> str:
    response = await client.post(CUSTOMERS, json={"name": name}, headers=person.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def feed(client: httpx.AsyncClient, person: Person, **params: Any) -> dict[str, Any]:
    response = await client.get(EVENTS, params=params, headers=person.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def seen(page: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["type"], e["entity_id"]) for e in page["items"]}


async def audit(client: httpx.AsyncClient, person: Person, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(AUDIT, params={"limit": 200, **params}, headers=person.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_feed_is_scoped_like_its_records(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    a = await create_customer(client, org.east_rep1, "Alpha Co")
    b = await create_customer(client, org.east_rep2, "Bravo Co")
    c = await create_customer(client, org.north_rep, "Charlie Co")
    region = await client.post(
        "/api/v1/regions", json={"name": "West"}, headers=org.director.headers
    )
    user = await client.post(
        "/api/v1/users",
        json={
            "email": "new.rep@example.com",
            "full_name": "New Rep",
            "role": "rep",
            "region_id": str(org.north.id),
        },
        headers=org.director.headers,
    )
    assert region.status_code == user.status_code == 201, user.text
    company = ("region.created", region.json()["id"])
    north_user = ("user.created", user.json()["id"])
    created = {name: ("customer.created", i) for name, i in (("a", a), ("b", b), ("c", c))}

    assert seen(await feed(client, org.east_rep1)) == {created["a"]}
    assert seen(await feed(client, org.east_rep2)) == {created["b"]}
    assert seen(await feed(client, org.north_rep)) == {created["c"]}
    assert seen(await feed(client, org.east_manager)) == {created["a"], created["b"]}
    assert seen(await feed(client, org.north_manager)) == {created["c"], north_user}
    assert seen(await feed(client, org.director)) == {*created.values(), company, north_user}


async def test_event_shows_what_happened_and_who_did_it(
    client: httpx.AsyncClient, org: Org
) -> None:
    customer_id = await create_customer(client, org.east_rep1, "Alpha Co")
    [event] = (await feed(client, org.east_rep1))["items"]
    assert event["type"] == "customer.created" and event["entity_type"] == "customer"
    assert event["entity_id"] == customer_id and event["actor_id"] == str(org.east_rep1.id)
    assert event["data"]["name"] == "Alpha Co" and event["data"]["id"] == customer_id
    assert event["timestamp"].endswith(("Z", "+00:00"))


async def test_after_continues_without_repeats(client: httpx.AsyncClient, org: Org) -> None:
    ids = [await create_customer(client, org.east_rep1, f"Firm {n} Co") for n in range(5)]
    await client.patch(
        f"{CUSTOMERS}/{ids[0]}", json={"industry": "Steel"}, headers=org.east_rep1.headers
    )
    everything = (await feed(client, org.east_rep1))["items"]
    assert len(everything) == 6

    collected: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10):
        page = await feed(client, org.east_rep1, limit=2, **({"after": cursor} if cursor else {}))
        assert page["next_cursor"], "a poller always gets a cursor"
        cursor = page["next_cursor"]
        if not page["items"]:
            break
        collected.extend(page["items"])
    assert [e["id"] for e in collected] == [e["id"] for e in everything]
    assert [e["type"] for e in collected][-1] == "customer.updated"

    # At the end the cursor stays put until something new happens, then yields just that.
    idle = await feed(client, org.east_rep1, after=cursor)
    assert idle["items"] == [] and idle["next_cursor"]
    newest = await create_customer(client, org.east_rep1, "Latest Co")
    fresh = await feed(client, org.east_rep1, after=idle["next_cursor"])
    assert [(e["type"], e["entity_id"]) for e in fresh["items"]] == [("customer.created", newest)]


async def test_empty_feed_still_gives_a_cursor(client: httpx.AsyncClient, org: Org) -> None:
    first = await feed(client, org.east_rep1)
    assert first["items"] == [] and first["next_cursor"]
    customer_id = await create_customer(client, org.east_rep1, "First Co")
    later = await feed(client, org.east_rep1, after=first["next_cursor"])
    assert [e["entity_id"] for e in later["items"]] == [customer_id]


async def test_others_events_move_nobody_elses_cursor_past_their_own(
    client: httpx.AsyncClient, org: Org
) -> None:
    start = (await feed(client, org.east_rep1))["next_cursor"]
    await create_customer(client, org.north_rep, "Their Co")
    mine = await create_customer(client, org.east_rep1, "Mine Co")
    await create_customer(client, org.east_rep2, "Neighbour Co")
    page = await feed(client, org.east_rep1, after=start)
    assert [e["entity_id"] for e in page["items"]] == [mine]


async def test_feed_never_passes_over_an_event_still_being_written(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    await create_customer(client, org.east_rep1, "Before Co")
    start = (await feed(client, org.director))["next_cursor"]
    async with database.session() as slow, slow.begin():
        # A real type: the feed answers only the names it documents (EventType).
        events.record(slow, "settings.updated", None, {"changed": []})
        # Its row is written (its seq taken) and not committed, as between the write of a
        # request's queued rows and its COMMIT, or once the request has run a query after.
        await slow.run_sync(pending_rows.write)
        # A later request writes its event while the slow transaction is open. On PostgreSQL
        # it commits first (with the higher seq); on SQLite it waits for the write lock.
        later = asyncio.create_task(create_customer(client, org.east_rep1, "After Co"))
        await asyncio.wait({later}, timeout=2)
        held = await feed(client, org.director, after=start)
        assert held["items"] == [] and held["next_cursor"] == start
    after_id = await later
    page = await feed(client, org.director, after=start)
    assert [(e["type"], e["entity_id"]) for e in page["items"]] == [
        ("settings.updated", None),
        ("customer.created", after_id),
    ]


async def test_feed_moves_past_a_rolled_back_event(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    await create_customer(client, org.east_rep1, "Before Co")
    start = (await feed(client, org.director))["next_cursor"]
    async with database.session() as session:
        await session.begin()
        events.record(session, "test.lost", None, {})
        await session.run_sync(pending_rows.write)  # its seq taken, then rolled back
        await session.rollback()
    after_id = await create_customer(client, org.east_rep1, "After Co")
    # Once older than the grace period, the hole the rollback left no longer holds back.
    async with database.session() as session, session.begin():
        await session.execute(
            update(Event).values(occurred_at=utcnow() - GAP_GRACE - timedelta(seconds=1))
        )
    page = await feed(client, org.director, after=start)
    assert [(e["type"], e["entity_id"]) for e in page["items"]] == [("customer.created", after_id)]


async def test_type_filter(client: httpx.AsyncClient, org: Org) -> None:
    customer_id = await create_customer(client, org.east_rep1, "Alpha Co")
    await client.patch(
        f"{CUSTOMERS}/{customer_id}", json={"industry": "Steel"}, headers=org.east_rep1.headers
    )
    await client.delete(f"{CUSTOMERS}/{customer_id}", headers=org.east_manager.headers)
    only_updates = await feed(client, org.east_manager, type="customer.updated")
    assert [e["type"] for e in only_updates["items"]] == ["customer.updated"]
    two = await feed(client, org.east_manager, type=["customer.created", "customer.deleted"])
    assert [e["type"] for e in two["items"]] == ["customer.created", "customer.deleted"]
    assert (await feed(client, org.east_manager, type="no.such"))["items"] == []


@pytest.mark.parametrize(
    "after",
    [
        "garbage!",
        base64.urlsafe_b64encode(b"x12").decode(),
        base64.urlsafe_b64encode(b"e").decode(),
        base64.urlsafe_b64encode(b"e" + b"9" * 40).decode(),
        base64.urlsafe_b64encode(b"e-5").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
async def test_bad_after_is_bad_request(client: httpx.AsyncClient, org: Org, after: str) -> None:
    response = await client.get(EVENTS, params={"after": after}, headers=org.director.headers)
    problem(response, 400, "bad_request")


async def test_feed_needs_a_token(client: httpx.AsyncClient) -> None:
    problem(await client.get(EVENTS), 401, "unauthorized")


async def test_audit_records_who_did_what(client: httpx.AsyncClient, org: Org) -> None:
    customer_id = await create_customer(client, org.east_rep1, "Alpha Co")
    url = f"{CUSTOMERS}/{customer_id}"
    patched = await client.patch(
        url, json={"industry": "Steel", "name": "Alpha Co"}, headers=org.east_rep1.headers
    )
    assert patched.status_code == 200
    assert (await client.delete(url, headers=org.east_manager.headers)).status_code == 204

    entries = await audit(client, org.director, entity_id=customer_id, sort="at")
    assert [(e["action"], e["actor_id"]) for e in entries] == [
        ("create", str(org.east_rep1.id)),
        ("update", str(org.east_rep1.id)),
        ("delete", str(org.east_manager.id)),
    ]
    create, change, delete = entries
    assert {e["entity_type"] for e in entries} == {"customers"}
    assert {e["region_id"] for e in entries} == {str(org.east.id)}
    assert create["before"] is None and create["after"]["name"] == "Alpha Co"
    assert create["after"]["owner_id"] == str(org.east_rep1.id)
    # Only what changed: the name was sent unchanged, version and timestamps are noise.
    assert change["before"] == {"industry": None}
    assert change["after"] == {"industry": "Steel"}
    assert set(delete["after"]) == {"deleted_at"} and delete["before"] == {"deleted_at": None}


async def test_audit_entries_share_the_fate_of_their_flush(database: Database, org: Org) -> None:
    """Entries are queued by the flush that made the change: a savepoint rolled back, or one
    whose flush failed, takes its entries with it; the transaction's others stay."""
    async with database.session() as session, session.begin():
        session.info["actor_id"] = org.director.id
        savepoint = await session.begin_nested()
        session.add(Region(name="Dropped"))
        await session.flush()
        await savepoint.rollback()
        with pytest.raises(IntegrityError):
            async with session.begin_nested():
                session.add(Region(name=org.east.name))  # taken: this flush fails
                await session.flush()
        kept = Region(name="Kept")
        session.add(kept)
    async with database.session(write=False) as session:
        names = set((await session.scalars(select(Region.name))).all())
        query = select(AuditEntry).where(AuditEntry.entity_type == "regions")
        entries = (await session.scalars(query)).all()
    assert names == {org.east.name, org.north.name, "Kept"}
    known = {org.east.id, org.north.id}
    (entry,) = [e for e in entries if e.entity_id not in known]
    assert (entry.entity_id, entry.action, entry.actor_id) == (kept.id, "create", org.director.id)
    assert entry.before is None and entry.after is not None and entry.after["name"] == "Kept"


async def test_events_share_the_fate_of_their_transaction(database: Database, org: Org) -> None:
    """Events are queued on the session and written as rows (app.pending_rows), yet behave
    as rows added at the moment they were recorded: seen by the transaction's own queries,
    kept when recorded before a savepoint that rolls back (even with nothing to flush),
    dropped with the savepoint or transaction they were recorded in, and committed when
    recorded after the last flush."""
    types = select(Event.type).order_by(Event.seq)
    async with database.session() as session, session.begin():
        events.record(session, "test.first", None, {"n": 1})
        # Nothing was flushed, yet the transaction's own query sees it.
        assert (await session.scalars(types)).all()[-1:] == ["test.first"]
        events.record(session, "test.before_savepoint", None, {})
        savepoint = await session.begin_nested()
        events.record(session, "test.in_rolled_back_savepoint", None, {})
        session.add(Region(name="Dropped"))
        await savepoint.rollback()
        async with session.begin_nested():
            events.record(session, "test.in_released_savepoint", None, {})
        events.record(session, "test.after_last_flush", None, {"n": 2})
    async with database.session() as session, session.begin():
        events.record(session, "test.rolled_back", None, {})
        await session.flush()
        await session.rollback()
    async with database.session(write=False) as session:
        written = (await session.scalars(types.where(Event.type.startswith("test.")))).all()
        data = {t: d for t, d in (await session.execute(select(Event.type, Event.data))).all()}
    assert written == [
        "test.first",
        "test.before_savepoint",
        "test.in_released_savepoint",
        "test.after_last_flush",
    ]
    assert data["test.first"] == {"n": 1} and data["test.after_last_flush"] == {"n": 2}


async def test_a_transactions_rows_go_together_at_its_commit(
    database: Database, org: Org, executed: list[str]
) -> None:
    """A service's flush leaves the audit entries it queued for the commit, where they go
    with the events recorded after it: in one statement on PostgreSQL, one a table on
    SQLite; each event in the order recorded."""

    def inserts() -> list[str]:
        return [sql for sql in executed if sql.lstrip().startswith(("INSERT", "WITH"))]

    def tables(statements: list[str]) -> list[str]:
        return [statement.split("(")[0].split()[-1] for statement in statements]

    executed.clear()
    async with database.session() as session, session.begin():
        session.info["actor_id"] = org.director.id
        region = Region(name="West")
        session.add(region)
        await session.flush()
        events.record(session, "test.first", region, {"n": 1})
        events.record(session, "test.second", region, {"n": 2})
        written_at_flush = inserts()
        executed.clear()
    written_at_commit = inserts()
    assert tables(written_at_flush) == ["regions"]
    if IS_POSTGRES:
        (statement,) = written_at_commit
        assert "INSERT INTO audit_log" in statement and "INSERT INTO events" in statement
    else:
        assert tables(written_at_commit) == ["audit_log", "events"]
    async with database.session(write=False) as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.entity_id == region.id))
        written = (
            await session.execute(
                select(Event.type, Event.data, Event.actor_id)
                .where(Event.entity_id == region.id)
                .order_by(Event.seq)
            )
        ).all()
    assert entry is not None and (entry.action, entry.actor_id) == ("create", org.director.id)
    assert entry.after is not None and entry.after["name"] == "West"
    assert [tuple(row) for row in written] == [
        ("test.first", {"n": 1}, org.director.id),
        ("test.second", {"n": 2}, org.director.id),
    ]


async def test_a_bulk_change_writes_every_row_in_order(database: Database, org: Org) -> None:
    """More values than one PostgreSQL statement can bind (32,767) still go in, in order."""
    async with database.session() as session, session.begin():
        session.info["actor_id"] = org.director.id
        region = Region(name="Bulk")
        session.add(region)
        await session.flush()
        for n in range(3300):  # ten columns an event
            events.record(session, "test.bulk", None, {"n": n})
    async with database.session(write=False) as session:
        numbers = (
            await session.scalars(
                select(Event.data).where(Event.type == "test.bulk").order_by(Event.seq)
            )
        ).all()
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.entity_id == region.id))
    assert [data["n"] for data in numbers] == list(range(3300))
    assert entry is not None and entry.action == "create"


async def test_audit_is_scoped_by_region(client: httpx.AsyncClient, org: Org) -> None:
    east = await create_customer(client, org.east_rep1, "East Co")
    north = await create_customer(client, org.north_rep, "North Co")
    region = await client.post(
        "/api/v1/regions", json={"name": "West"}, headers=org.director.headers
    )

    everything = {e["entity_id"] for e in await audit(client, org.director)}
    assert {east, north, region.json()["id"]} <= everything
    # Besides the customer, a manager sees the entries of their region's users and of the
    # region itself (the org's); not the new West region's.
    east_view = await audit(client, org.east_manager)
    east_people = {str(p.id) for p in (org.east_manager, org.east_rep1, org.east_rep2)}
    assert {e["entity_id"] for e in east_view} == {east, str(org.east.id), *east_people}
    assert {e["region_id"] for e in east_view} == {str(org.east.id)}
    north_view = await audit(client, org.north_manager)
    north_people = {str(p.id) for p in (org.north_manager, org.north_rep)}
    assert {e["entity_id"] for e in north_view} == {north, str(org.north.id), *north_people}
    # Filtering by another region's record does not widen the scope.
    assert await audit(client, org.east_manager, entity_id=north) == []
    problem(await client.get(AUDIT, headers=org.east_rep1.headers), 403, "forbidden")


async def test_audit_holds_no_secrets(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    created = await client.post(
        "/api/v1/users",
        json={
            "email": "keeper@example.com",
            "full_name": "Key Keeper",
            "role": "rep",
            "region_id": str(org.east.id),
            "password": "first-secret-pw",
        },
        headers=org.director.headers,
    )
    user_id = created.json()["id"]
    changed = await client.patch(
        f"/api/v1/users/{user_id}",
        json={"password": "second-secret-pw", "full_name": "Key Keeper II"},
        headers=org.director.headers,
    )
    assert changed.status_code == 200, changed.text
    login = await client.post(
        "/api/v1/auth/token",
        data={"username": "keeper@example.com", "password": "second-secret-pw"},
    )
    assert login.status_code == 200, login.text
    async with database.session(write=False) as session:
        stored = await session.get(User, uuid.UUID(user_id))
        assert stored is not None and stored.password_hash

    entries = await audit(client, org.director, entity_id=user_id, sort="at")
    assert [e["action"] for e in entries] == ["create", "update"]
    # The log says the password changed, never what to or from.
    assert entries[1]["after"] == {"full_name": "Key Keeper II", "credentials": "[changed]"}
    everything = json.dumps(await audit(client, org.director))
    for secret in (
        "password_hash",
        "token_digest",
        stored.password_hash,
        "first-secret-pw",
        "second-secret-pw",
        login.json()["refresh_token"],
    ):
        assert secret not in everything


async def test_audit_pages_and_filters(client: httpx.AsyncClient, org: Org) -> None:
    ids = [await create_customer(client, org.east_rep1, f"Firm {n} Co") for n in range(3)]
    await create_customer(client, org.east_rep2, "Other Co")
    for sort in ("at", "-at"):
        collected: list[str] = []
        cursor: str | None = None
        for _ in range(10):
            params = {"sort": sort, "limit": 1, "entity_type": "customers"}
            if cursor:
                params["cursor"] = cursor
            response = await client.get(AUDIT, params=params, headers=org.east_manager.headers)
            page = response.json()
            collected.extend(e["id"] for e in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(collected) == len(set(collected)) == 4
        full = await audit(client, org.east_manager, sort=sort, entity_type="customers")
        assert [e["id"] for e in full] == collected
    by_actor = await audit(client, org.director, actor_id=str(org.east_rep1.id))
    assert {e["entity_id"] for e in by_actor} == set(ids)
    by_type = await audit(client, org.director, entity_type="customers")
    assert len(by_type) == 4 and await audit(client, org.director, entity_type="nothing") == []
    future = await audit(client, org.director, **{"from": "2999-01-01T00:00:00Z"})
    past = await audit(client, org.director, to="2000-01-01T00:00:00Z")
    assert future == past == []


@pytest.mark.parametrize("params", [{"from": "2026-07-01T08:00:00"}, {"to": "yesterday"}])
async def test_audit_refuses_bad_times(
    client: httpx.AsyncClient, org: Org, params: dict[str, str]
) -> None:
    # A time without a zone is ambiguous: refused as a field error rather than guessed.
    response = await client.get(AUDIT, params=params, headers=org.director.headers)
    problem(response, 422, "validation_error")


async def _rows_without_a_region_column(
    client: httpx.AsyncClient, database: Database, rep: Person
) -> dict[str, str]:
    """A contact, a follow-up, a delivery and a complaint update of ``rep``'s, through the
    API (ids by entity type), and a signed contract with its plan and quote behind them."""
    contract = await make_contract(database, rep, ContractStatus.SIGNED)
    rows: dict[str, str] = {}
    for entity_type, path, body in (
        ("contacts", f"{CUSTOMERS}/{contract.customer_id}/contacts", {"name": "Ann Lee"}),
        (
            "follow_ups",
            "/api/v1/follow-ups",
            {
                "customer_id": str(contract.customer_id),
                "kind": "call",
                "status": "planned",
                "due_at": "2027-01-04T09:00:00Z",
            },
        ),
        (
            "deliveries",
            f"/api/v1/contracts/{contract.id}/deliveries",
            {"description": "Pumps", "planned_date": "2027-01-04"},
        ),
    ):
        response = await client.post(path, json=body, headers=rep.headers)
        assert response.status_code == 201, response.text
        rows[entity_type] = response.json()["id"]
    complaint = await make_complaint(database, rep)
    progress = await client.post(
        f"/api/v1/complaints/{complaint.id}/updates",
        json={"message": "The replacement ships tomorrow."},
        headers=rep.headers,
    )
    assert progress.status_code == 201, progress.text
    rows["complaint_updates"] = progress.json()["id"]
    return rows


async def test_audit_entries_of_rows_without_a_region_of_their_own_reach_the_manager(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    """Follow-ups, contacts, quotes, installments, deliveries and complaint updates have no
    region column (theirs is their customer's, opportunity's, contract's or complaint's):
    the entries about them are the region's manager's all the same."""
    east_rows = await _rows_without_a_region_column(client, database, org.east_rep1)

    east_view = await audit(client, org.east_manager)
    seen_by_type = {
        (e["entity_type"], e["entity_id"]) for e in east_view if e["region_id"] == str(org.east.id)
    }
    assert set(east_rows.items()) <= seen_by_type
    # The contract's plan and the quote it came from, written through the services.
    assert {"installments", "quotes"} <= {entity_type for entity_type, _ in seen_by_type}
    north_view = {e["entity_id"] for e in await audit(client, org.north_manager)}
    assert not north_view & {e["entity_id"] for e in east_view}


async def _regions_by_entry(database: Database) -> dict[uuid.UUID, uuid.UUID | None]:
    async with database.session(write=False) as session:
        rows = await session.execute(select(AuditEntry.id, AuditEntry.region_id))
        return {entry_id: region_id for entry_id, region_id in rows}


async def test_the_migration_gives_earlier_entries_their_region(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    await _rows_without_a_region_column(client, database, org.east_rep1)
    await client.post("/api/v1/regions", json={"name": "West"}, headers=org.director.headers)
    regions = await _regions_by_entry(database)
    kinds = {
        "contacts",
        "follow_ups",
        "deliveries",
        "complaint_updates",
        "installments",
        "quotes",
        "regions",
    }
    async with database.session(write=False) as session:
        found = list(
            await session.execute(
                select(AuditEntry.id, AuditEntry.entity_type).where(
                    AuditEntry.entity_type.in_(kinds)
                )
            )
        )
    of_those = {entry_id for entry_id, _ in found}
    assert {entity_type for _, entity_type in found} == kinds
    assert all(regions[entry] for entry in of_those)

    # Down to before it (where none of those entries had a region) and up again: the
    # upgrade fills in each one's region from the rows. Alembic runs its own event loop.
    # (Both steps only update rows, so the app's pooled connections may stay: disposing of
    # its pool would also part it from its caller cache, app.callers, for later tests.)
    config = alembic_config(TEST_DATABASE_URL)
    await asyncio.to_thread(command.downgrade, config, "0009_follow_up_scope")
    downgraded = await _regions_by_entry(database)
    assert all(downgraded[entry] is None for entry in of_those)
    assert {k: v for k, v in downgraded.items() if k not in of_those} == {
        k: v for k, v in regions.items() if k not in of_those
    }
    await asyncio.to_thread(command.upgrade, config, "head")

    assert await _regions_by_entry(database) == regions
