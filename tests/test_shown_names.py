"""Lists and reads show the names beside the ids (``customer_name``, ``owner_name``), read in
the statement that reads the rows, and answers after a write show them too: after a
reassignment, the new owner's."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from app.db import Database
from app.models.contracts import ContractStatus
from app.models.customers import Customer
from app.models.platform import Event
from tests.complaint_helpers import make_complaint
from tests.contract_helpers import make_contract
from tests.factories import Person, listed_as_read, make_customer, make_org
from tests.pipeline_helpers import make_opportunity

API = "/api/v1"


def name_of(person: Person) -> str:
    return person.user.full_name


async def customer_name(database: Database, customer_id: Any) -> str:
    async with database.session() as session:
        name = await session.scalar(select(Customer.name).where(Customer.id == customer_id))
    assert name is not None
    return name


async def last_event_data(database: Database, entity_id: Any, type_: str) -> dict[str, Any]:
    async with database.session() as session:
        data = await session.scalar(
            select(Event.data)
            .where(Event.entity_id == entity_id, Event.type == type_)
            .order_by(Event.seq.desc())
        )
    assert data is not None
    return data


async def test_customers_show_their_owner_in_list_read_and_after_reassignment(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep, other = org.east_rep1, org.east_rep2
    customer = await make_customer(database, rep, name="Lianhua Trading")

    items = await listed_as_read(client, rep, "customers")
    assert items[str(customer.id)]["owner_name"] == name_of(rep)
    # The filtered list is another statement: it shows the name too.
    filtered = await listed_as_read(client, rep, "customers", {"q": "lianhua"})
    assert filtered[str(customer.id)]["owner_name"] == name_of(rep)

    moved = await client.post(
        f"{API}/customers/{customer.id}/assign",
        json={"owner_id": str(other.id)},
        headers=org.east_manager.headers,
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["owner_id"], moved.json()["owner_name"]) == (
        str(other.id),
        name_of(other),
    )
    event = await last_event_data(database, customer.id, "customer.assigned")
    assert event["owner_name"] == name_of(other)
    read = await client.get(f"{API}/customers/{customer.id}", headers=org.east_manager.headers)
    assert read.json()["owner_name"] == name_of(other)
    items = await listed_as_read(client, other, "customers")
    assert items[str(customer.id)]["owner_name"] == name_of(other)

    # A change of details answers with the names too (read with the row for the change).
    patched = await client.patch(
        f"{API}/customers/{customer.id}", json={"industry": "Textiles"}, headers=other.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["owner_name"] == name_of(other)


async def test_a_customer_created_for_a_rep_shows_the_rep(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    created = await client.post(
        f"{API}/customers",
        json={"name": "Given Away Ltd", "owner_id": str(org.east_rep2.id)},
        headers=org.east_manager.headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["owner_name"] == name_of(org.east_rep2)


async def test_follow_ups_show_the_customer_and_their_writer(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep, manager = org.east_rep1, org.east_manager
    customer = await make_customer(database, rep, name="Haitian Pumps")

    # Written by the manager for the rep's customer: the owner is who wrote it.
    created = await client.post(
        f"{API}/follow-ups",
        json={"customer_id": str(customer.id), "kind": "call", "summary": "Called."},
        headers=manager.headers,
    )
    assert created.status_code == 201, created.text
    answer = created.json()
    assert (answer["customer_name"], answer["owner_name"]) == ("Haitian Pumps", name_of(manager))
    event = await last_event_data(database, uuid.UUID(answer["id"]), "follow_up.created")
    assert (event["customer_name"], event["owner_name"]) == ("Haitian Pumps", name_of(manager))

    items = await listed_as_read(client, rep, "follow-ups")
    assert items[answer["id"]]["customer_name"] == "Haitian Pumps"
    assert items[answer["id"]]["owner_name"] == name_of(manager)

    patched = await client.patch(
        f"{API}/follow-ups/{answer['id']}", json={"outcome": "Visit."}, headers=rep.headers
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["customer_name"], patched.json()["owner_name"]) == (
        "Haitian Pumps",
        name_of(manager),
    )


async def test_opportunities_show_names_and_follow_their_customer_to_a_new_owner(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep, other = org.east_rep1, org.east_rep2
    opp = await make_opportunity(database, rep)
    customer = await customer_name(database, opp.customer_id)

    items = await listed_as_read(client, rep, "opportunities")
    assert (items[str(opp.id)]["customer_name"], items[str(opp.id)]["owner_name"]) == (
        customer,
        name_of(rep),
    )

    created = await client.post(
        f"{API}/opportunities",
        json={"customer_id": str(opp.customer_id), "title": "Second line"},
        headers=org.east_manager.headers,
    )
    assert created.status_code == 201, created.text
    # Opened by the manager, owned by the customer's owner.
    assert (created.json()["customer_name"], created.json()["owner_name"]) == (
        customer,
        name_of(rep),
    )

    moved = await client.post(
        f"{API}/customers/{opp.customer_id}/assign",
        json={"owner_id": str(other.id)},
        headers=org.east_manager.headers,
    )
    assert moved.status_code == 200, moved.text
    items = await listed_as_read(client, other, "opportunities")
    assert {item["owner_name"] for item in items.values()} == {name_of(other)}

    stepped = await client.post(
        f"{API}/opportunities/{opp.id}/transitions",
        json={"to": "contacted"},
        headers=other.headers,
    )
    assert stepped.status_code == 200, stepped.text
    assert (stepped.json()["customer_name"], stepped.json()["owner_name"]) == (
        customer,
        name_of(other),
    )
    event = await last_event_data(database, opp.id, "opportunity.stage_changed")
    assert (event["customer_name"], event["owner_name"]) == (customer, name_of(other))

    patched = await client.patch(
        f"{API}/opportunities/{opp.id}", json={"probability": 30}, headers=other.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["owner_name"] == name_of(other)


async def test_contracts_and_receivables_show_names(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    contract = await make_contract(database, rep, ContractStatus.SIGNED)
    customer = await customer_name(database, contract.customer_id)

    items = await listed_as_read(client, rep, "contracts")
    assert (items[str(contract.id)]["customer_name"], items[str(contract.id)]["owner_name"]) == (
        customer,
        name_of(rep),
    )
    receivables = await client.get(f"{API}/receivables", headers=rep.headers)
    assert receivables.status_code == 200, receivables.text
    [due] = receivables.json()["items"]
    assert (due["customer_id"], due["customer_name"]) == (str(contract.customer_id), customer)
    assert (due["owner_id"], due["owner_name"]) == (str(rep.id), name_of(rep))

    draft = await make_contract(database, rep)
    patched = await client.patch(
        f"{API}/contracts/{draft.id}", json={"warranty": "Two years."}, headers=rep.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["owner_name"] == name_of(rep)
    submitted = await client.post(
        f"{API}/contracts/{draft.id}/transitions", json={"to": "under_review"}, headers=rep.headers
    )
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["customer_name"] == await customer_name(database, draft.customer_id)


async def test_complaints_show_names(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    complaint = await make_complaint(database, rep)
    customer = await customer_name(database, complaint.customer_id)

    items = await listed_as_read(client, rep, "complaints")
    assert (
        items[str(complaint.id)]["customer_name"],
        items[str(complaint.id)]["owner_name"],
    ) == (customer, name_of(rep))
    acknowledged = await client.post(
        f"{API}/complaints/{complaint.id}/transitions",
        json={"to": "acknowledged"},
        headers=rep.headers,
    )
    assert acknowledged.status_code == 200, acknowledged.text
    assert (acknowledged.json()["customer_name"], acknowledged.json()["owner_name"]) == (
        customer,
        name_of(rep),
    )


async def _statements_for_page(
    client: httpx.AsyncClient,
    person: Person,
    collection: str,
    sent: list[str],
    executed: list[str],
) -> tuple[int, list[str]]:
    sent.clear()
    executed.clear()
    listed = await client.get(f"{API}/{collection}", headers=person.headers)
    assert listed.status_code == 200, listed.text
    return len(listed.json()["items"]), [*sent, *executed]


async def test_a_page_reads_its_names_in_its_own_statement(
    client: httpx.AsyncClient, database: Database, sent: list[str], executed: list[str]
) -> None:
    """However many rows a page has, the names cost no statement of their own: the page's
    statement is the only one that reads customers' or users' names."""
    org = await make_org(database)
    rep = org.east_rep1
    for _ in range(3):
        opp = await make_opportunity(database, rep)
        await make_complaint(database, rep)
        response = await client.post(
            f"{API}/follow-ups",
            json={"customer_id": str(opp.customer_id), "kind": "call"},
            headers=rep.headers,
        )
        assert response.status_code == 201
    await make_contract(database, rep, ContractStatus.SIGNED)
    await make_contract(database, rep, ContractStatus.SIGNED)
    for collection, table in (
        ("customers", "customers"),
        ("follow-ups", "follow_ups"),
        ("opportunities", "opportunities"),
        ("contracts", "contracts"),
        ("complaints", "complaints"),
        ("receivables", "installments"),
    ):
        count, statements = await _statements_for_page(client, rep, collection, sent, executed)
        assert count >= 2, collection
        naming = [sql for sql in statements if "AS owner_name" in sql]
        assert len(naming) == 1, (collection, naming)
        assert f"FROM {table}" in naming[0], collection
        # Both names, where the rows have a customer, in that same statement.
        if collection != "customers":
            assert "AS customer_name" in naming[0], collection


async def test_the_benchmarks_routes_read_names_without_a_statement_of_their_own(
    client: httpx.AsyncClient, database: Database, sent: list[str], executed: list[str]
) -> None:
    """Read-one customer reads its owner's name in its one statement; a follow-up's answer
    takes the names the request knows (the customer it read, the caller); a stage move reads
    them in the statement that loads the opportunity."""
    org = await make_org(database)
    rep = org.east_rep1
    opp = await make_opportunity(database, rep)
    await client.get(f"{API}/auth/me", headers=rep.headers)  # the caller, remembered on PG
    for collection in (f"customers/{opp.customer_id}", "customers"):
        sent.clear()
        executed.clear()
        response = await client.get(f"{API}/{collection}", headers=rep.headers)
        assert response.status_code == 200, response.text
        reading = [sql for sql in (*sent, *executed) if "FROM customers" in sql]
        assert len(reading) == 1 and "AS owner_name" in reading[0], collection

    sent.clear()
    executed.clear()
    created = await client.post(
        f"{API}/follow-ups",
        json={"customer_id": str(opp.customer_id), "kind": "call"},
        headers=rep.headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["owner_name"] == name_of(rep)
    names = ("AS owner_name", "AS customer_name")
    assert [sql for sql in (*sent, *executed) if any(name in sql for name in names)] == []

    sent.clear()
    executed.clear()
    moved = await client.post(
        f"{API}/opportunities/{opp.id}/transitions", json={"to": "contacted"}, headers=rep.headers
    )
    assert moved.status_code == 200, moved.text
    naming = [sql for sql in (*sent, *executed) if "AS owner_name" in sql]
    assert len(naming) == 1 and "FROM opportunities" in naming[0]
