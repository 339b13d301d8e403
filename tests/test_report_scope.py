"""Payments, stage changes and follow-ups carry the owner and region of what they belong to
(reports and lists pick a scope's rows by them), kept in step when a customer changes hands,
and filled in for rows written before they existed (migrations 0008 and 0009)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from alembic import command
from app.db import Database
from app.migrations import alembic_config
from app.models.contracts import Contract, ContractStatus, Payment
from app.models.customers import FollowUp
from app.models.pipeline import Opportunity, Stage
from app.models.platform import StateChange
from app.services import department
from tests.conftest import TEST_DATABASE_URL
from tests.contract_helpers import API, make_contract
from tests.factories import Person, make_org
from tests.pipeline_helpers import make_opportunity

Row = tuple[uuid.UUID, uuid.UUID | None, uuid.UUID | None]


@dataclass
class Scopes:
    """(what it belongs to, owner, region) of every payment, stage change and follow-up."""

    payments: set[Row]
    changes: set[Row]
    follow_ups: set[Row]


async def _scopes(database: Database) -> Scopes:
    async with database.session() as session:

        async def rows(*columns: object) -> set[Row]:
            return {(a, b, c) for a, b, c in await session.execute(select(*columns))}

        return Scopes(
            payments=await rows(Payment.contract_id, Payment.owner_id, Payment.region_id),
            changes=await rows(StateChange.entity_id, StateChange.owner_id, StateChange.region_id),
            follow_ups=await rows(
                FollowUp.customer_id, FollowUp.customer_owner_id, FollowUp.customer_region_id
            ),
        )


async def _move(
    client: httpx.AsyncClient, who: Person, opp_id: object, to: str = "contacted"
) -> None:
    # A move back to lead needs a note.
    body = {"to": to} if to != "lead" else {"to": to, "note": "Not yet."}
    moved = await client.post(
        f"{API}/opportunities/{opp_id}/transitions", json=body, headers=who.headers
    )
    assert moved.status_code == 200, moved.text


async def _pay(client: httpx.AsyncClient, who: Person, contract_id: object) -> None:
    body = {"amount": "500.00", "received_on": str(department.today()), "method": "cash"}
    paid = await client.post(
        f"{API}/contracts/{contract_id}/payments", json=body, headers=who.headers
    )
    assert paid.status_code == 201, paid.text


async def _follow_up(client: httpx.AsyncClient, who: Person, customer_id: object) -> str:
    body = {"customer_id": str(customer_id), "kind": "call", "status": "done"}
    created = await client.post(f"{API}/follow-ups", json=body, headers=who.headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _listed(client: httpx.AsyncClient, who: Person) -> list[str]:
    answer = await client.get(f"{API}/follow-ups", headers=who.headers)
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


async def _paid_and_moved(
    client: httpx.AsyncClient, database: Database, rep: Person
) -> tuple[Contract, Opportunity]:
    """A signed contract of the rep's with a payment, and a lead the rep moved on."""
    contract = await make_contract(database, rep, ContractStatus.SIGNED)
    opp = await make_opportunity(database, rep, Stage.LEAD, needs_summary=None)
    await _pay(client, rep, contract.id)
    await _move(client, rep, opp.id)
    return contract, opp


async def test_payments_stage_changes_and_follow_ups_carry_the_scope(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.north_rep
    contract, opp = await _paid_and_moved(client, database, rep)
    # The manager writes it; the customer's rep still owns the customer.
    await _follow_up(client, org.north_manager, opp.customer_id)

    scopes = await _scopes(database)
    assert scopes.payments == {(contract.id, rep.id, org.north.id)}
    # The opportunity's move, and the contract's own changes made on its way to signing.
    assert (opp.id, rep.id, org.north.id) in scopes.changes
    assert {(owner, region) for _, owner, region in scopes.changes} == {(rep.id, org.north.id)}
    assert scopes.follow_ups == {(opp.customer_id, rep.id, org.north.id)}


async def test_a_stage_change_knows_when_its_stay_began_and_whether_it_moved_on(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    opp = await make_opportunity(database, rep, Stage.LEAD, needs_summary=None)
    await _move(client, rep, opp.id)  # to contacted
    await _move(client, rep, opp.id, "lead")
    await _move(client, rep, opp.id)  # to contacted again
    first, second, third = await _stays(database, opp.id)
    # (from_state_at, at, next_state_at): lead began at creation, contacted with the first
    # move, lead again with the second.
    assert first[0] == opp.created_at
    assert second[0] == first[1] and third[0] == second[1]
    # Back in lead, it moved on to contacted with the third change; neither stay in
    # contacted has been followed by needs_analysis.
    assert second[2] == third[1]
    assert first[2] is None and third[2] is None


async def _stays(
    database: Database, entity_id: uuid.UUID
) -> list[tuple[datetime, datetime, datetime | None]]:
    """(from_state_at, at, next_state_at) of a resource's changes, in order."""
    async with database.session() as session:
        rows = await session.execute(
            select(StateChange.from_state_at, StateChange.at, StateChange.next_state_at)
            .where(StateChange.entity_id == entity_id)
            .order_by(StateChange.at, StateChange.id)
        )
        return [(began, ended, moved_on) for began, ended, moved_on in rows]


async def test_a_reassigned_customers_history_and_follow_ups_go_with_it(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep, other = org.east_rep1, org.east_rep2
    opp = await make_opportunity(database, rep, Stage.LEAD, needs_summary=None)
    async with database.session() as session, session.begin():
        # Created last quarter: only its move in this quarter brings it into the funnel.
        (await session.get_one(Opportunity, opp.id)).created_at = datetime(2026, 8, 3, tzinfo=UTC)
    await _move(client, rep, opp.id)
    follow_up = await _follow_up(client, rep, opp.customer_id)
    assert await _listed(client, rep) == [follow_up]
    assert await _listed(client, other) == []

    assigned = await client.post(
        f"{API}/customers/{opp.customer_id}/assign",
        json={"owner_id": str(other.id)},
        headers=org.east_manager.headers,
    )
    assert assigned.status_code == 200, assigned.text

    scopes = await _scopes(database)
    assert scopes.changes == {(opp.id, other.id, org.east.id)}
    assert scopes.follow_ups == {(opp.customer_id, other.id, org.east.id)}
    assert await _listed(client, other) == [follow_up]
    assert await _listed(client, rep) == []

    async def entered(who: Person) -> int:
        answer = await client.get(
            f"{API}/performance/funnel",
            params={"scope": "rep", "scope_id": str(who.id), "period": "2026-Q4"},
            headers=org.east_manager.headers,
        )
        assert answer.status_code == 200, answer.text
        return {s["stage"]: s["entered"] for s in answer.json()["stages"]}["contacted"]

    assert await entered(other) == 1
    assert await entered(rep) == 0


async def test_the_migrations_fill_in_rows_written_before_them(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep2
    contract, opp = await _paid_and_moved(client, database, rep)
    await _move(client, rep, opp.id, "lead")
    await _move(client, rep, opp.id)
    await _follow_up(client, rep, opp.customer_id)
    stays = await _stays(database, opp.id)
    # Stays that began at creation and with the change before; one that moved on.
    assert len(stays) == 3 and stays[1][2] == stays[2][1]
    before = await _scopes(database)
    assert before.payments == {(contract.id, rep.id, org.east.id)}
    assert (opp.id, rep.id, org.east.id) in before.changes
    assert before.follow_ups == {(opp.customer_id, rep.id, org.east.id)}

    # Down to the schema before the copies existed and up again: the upgrade's backfill must
    # give every row back its scope. Alembic runs its own event loop, hence the thread.
    await database.engine.dispose()
    config = alembic_config(TEST_DATABASE_URL)
    await asyncio.to_thread(command.downgrade, config, "0007_scale_indexes")
    await asyncio.to_thread(command.upgrade, config, "head")
    await database.engine.dispose()  # pooled connections may hold plans of the old tables

    assert await _scopes(database) == before
    assert await _stays(database, opp.id) == stays
