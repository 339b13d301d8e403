"""Reads on the driver connection (app.reads): the same answer as the ORM's, the same scope,
the connection back in the pool after the request, and a lost connection answered 503."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import httpx
import pytest
from sqlalchemy import bindparam, case, func, select, text

from app import reads
from app.callers import LISTENER_NAME
from app.config import get_settings
from app.db import Database, create_engine, driver_connection
from app.main import create_app
from app.models.contracts import Contract, ContractStatus
from app.models.customers import Customer, CustomerRead
from app.services import customer_reads, department
from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL
from tests.contract_helpers import make_contract
from tests.factories import Org, etag_of, make_customer, make_org, problem
from tests.soak_helpers import PrivatePostgres

postgres_only = pytest.mark.skipif(not IS_POSTGRES, reason="autocommit reads are PostgreSQL's")


@pytest.fixture
async def rep_customer(database: Database) -> tuple[Org, str]:
    """The small department, and the URL of a customer of ``east_rep1``."""
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    return org, f"/api/v1/customers/{customer.id}"


async def test_a_customer_read_on_the_driver_is_the_orm_read(
    client: httpx.AsyncClient, database: Database, sent: list[str]
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    answer = await client.get(f"/api/v1/customers/{customer.id}", headers=org.east_rep1.headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["etag"] == etag_of(CustomerRead, answer)
    assert answer.json()["version"] == customer.version
    assert len(sent) == 1 and "FROM customers" in sent[0]

    async with database.session(write=False) as session, session.begin():
        stored = await session.get(Customer, customer.id)
        assert stored is not None
        expected = await customer_reads.to_read(session, stored)
    assert answer.json() == expected.model_dump(mode="json")


async def test_a_customer_outside_the_callers_scope_is_not_found(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    theirs = await make_customer(database, org.east_rep2)
    url = f"/api/v1/customers/{theirs.id}"
    problem(await client.get(url, headers=org.east_rep1.headers), 404, "not_found")
    problem(await client.get(url, headers=org.north_manager.headers), 404, "not_found")
    assert (await client.get(url, headers=org.east_manager.headers)).status_code == 200
    assert (await client.get(url, headers=org.director.headers)).status_code == 200

    async with database.session() as session, session.begin():
        await session.execute(text("UPDATE customers SET deleted_at = created_at"))
    problem(await client.get(url, headers=org.director.headers), 404, "not_found")


@postgres_only
async def test_every_read_gives_its_connection_back(
    client: httpx.AsyncClient, database: Database, rep_customer: tuple[Org, str]
) -> None:
    org, url = rep_customer
    pool = database.engine.sync_engine.pool
    # More reads than the pool holds: a connection not given back would run it dry.
    for _ in range(database.engine.sync_engine.pool.size() + 5):  # type: ignore[attr-defined]
        answer = await client.get(url, headers=org.east_rep1.headers)
        assert answer.status_code == 200
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
    problem(
        await client.get(f"/api/v1/customers/{org.east.id}", headers=org.east_rep1.headers),
        404,
        "not_found",
    )
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


@postgres_only
async def test_a_read_on_a_lost_connection_is_a_503_and_the_next_one_works(
    client: httpx.AsyncClient, database: Database, rep_customer: tuple[Org, str]
) -> None:
    org, url = rep_customer
    # Several connections in the pool, all to be lost with the database's restart.
    held = [await database.engine.connect() for _ in range(3)]
    for connection in held:
        await connection.execute(text("SELECT 1"))
    for connection in held:
        await connection.close()
    # The caller remembered, so the customer's read is the request's first statement.
    database.callers.forget()
    database.callers.listening = True
    try:
        assert (await client.get(url, headers=org.east_rep1.headers)).status_code == 200
        # From a connection of its own: the pool's one connection is the one to lose.
        killer = await asyncpg.connect(TEST_DATABASE_URL.replace("+asyncpg", ""))
        try:
            others = (
                "FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                " AND application_name <> $1"
            )
            await killer.execute(f"SELECT pg_terminate_backend(pid) {others}", LISTENER_NAME)
            # pg_terminate_backend only signals: wait until the backends have gone.
            for _ in range(100):
                if await killer.fetchval(f"SELECT count(*) {others}", LISTENER_NAME) == 0:
                    break
                await asyncio.sleep(0.02)
        finally:
            await killer.close()
        lost = await client.get(url, headers=org.east_rep1.headers)
        problem(lost, 503, "unavailable")
        assert lost.headers["retry-after"]
        # Every connection opened before the loss is replaced, not only the one that failed.
        for _ in range(3):
            assert (await client.get(url, headers=org.east_rep1.headers)).status_code == 200
            async with database.engine.connect() as connection:
                assert await connection.scalar(text("SELECT 1")) == 1
    finally:
        database.callers.listening = False
        database.callers.forget()


async def test_a_read_with_an_in_list_and_literals_answers_as_the_session(
    database: Database,
) -> None:
    """What the reports send (``services.figures``): an IN list of any length, an IN list
    and values bound in the statement itself, money sums and averages, answered with the
    same values and types as through the session; also when the SQL rendered for the
    lengths of an earlier call is reused with other values."""
    org = await make_org(database)
    await make_contract(database, org.east_rep1, ContractStatus.SIGNED, list_price="1000.00")
    await make_contract(database, org.east_rep1, ContractStatus.SIGNED, list_price="250.50")
    await make_contract(database, org.east_rep2, ContractStatus.SIGNED, list_price="99.99")
    large = case((Contract.amount > 500, 1), else_=0)
    stmt = (
        select(
            func.sum(Contract.amount),
            func.avg(Contract.amount),
            func.count(),
            func.sum(large),
            Contract.owner_id,
        )
        .where(
            Contract.owner_id.in_(bindparam("owners", expanding=True)),
            Contract.status.in_([ContractStatus.SIGNED, ContractStatus.TERMINATED]),
        )
        .group_by(Contract.owner_id)
    )
    read = reads.Read(stmt)
    answers = []
    rep1, rep2 = org.east_rep1.id, org.east_rep2.id
    for owners in ([rep1], [rep1, rep2], [], [rep2], [rep2, rep1], [rep1]):
        async with database.session() as session, session.begin():
            expected = [tuple(row) for row in await session.execute(stmt, {"owners": owners})]
            got = await read.rows(await driver_connection(session), {"owners": owners})
        assert sorted(got, key=str) == sorted(expected, key=str)
        assert {tuple(type(v) for v in row) for row in got} == {
            tuple(type(v) for v in row) for row in expected
        }
        answers.append({row[-1]: row[:-1] for row in got})
    assert [len(answer) for answer in answers] == [1, 2, 0, 1, 2, 1]
    assert answers[3].keys() == {rep2} and answers[4] == answers[1] and answers[5] == answers[0]
    async with database.session(write=False) as session:
        mine = select(Contract.amount).where(Contract.owner_id == org.east_rep1.id)
        amounts = list(await session.scalars(mine))
    total, mean, count, large_ones = answers[1][org.east_rep1.id]
    assert (count, large_ones) == (2, sum(1 for amount in amounts if amount > 500))
    assert isinstance(total, Decimal) and total == sum(amounts) and mean == total / 2


async def test_reads_together_answer_as_each_read_alone(
    database: Database, sent: list[str]
) -> None:
    """``reads.rows_together`` (a report's figures): each read's rows with the same values and
    types as when it runs alone (money sums, counts, UUIDs, UTC timestamps, strings), also for
    a read with no rows and for IN lists and values bound in the statement; on PostgreSQL in
    one statement, whose arguments are each read's own."""
    org = await make_org(database)
    await make_contract(database, org.east_rep1, ContractStatus.SIGNED, list_price="1000.00")
    await make_contract(database, org.east_rep2, ContractStatus.SIGNED, list_price="99.99")
    large = case((Contract.amount > 500, 1), else_=0)
    per_owner = reads.Read(
        select(func.sum(Contract.amount), func.count(), func.sum(large), Contract.owner_id)
        .where(Contract.owner_id.in_(bindparam("owners", expanding=True)))
        .group_by(Contract.owner_id)
    )
    signed = reads.Read(
        select(Contract.id, Contract.number, Contract.signed_at, Contract.status)
        .where(Contract.owner_id == bindparam("owner"))
        .order_by(Contract.number)
    )
    nothing = reads.Read(select(Contract.id).where(Contract.amount > bindparam("above")))
    rep1, rep2 = org.east_rep1.id, org.east_rep2.id
    batch = [
        (per_owner, {"owners": [rep1, rep2]}),
        (signed, {"owner": rep2}),
        (nothing, {"above": Decimal("1000000")}),
        (per_owner, {"owners": [rep2]}),
        (signed, {"owner": rep1}),
    ]
    async with database.session(write=False) as session, session.begin():
        connection = await driver_connection(session)
        alone = [await read.rows(connection, params) for read, params in batch]
        sent.clear()
        together = await reads.rows_together(connection, batch)
    assert [sorted(rows, key=str) for rows in together] == [sorted(rows, key=str) for rows in alone]
    types = [[tuple(type(v) for v in row) for row in rows] for rows in together]
    assert types == [[tuple(type(v) for v in row) for row in rows] for rows in alone]
    assert [len(rows) for rows in together] == [2, 1, 0, 1, 1]
    assert {row[-1]: row[1] for row in together[0]} == {rep1: 1, rep2: 1}
    assert together[1][0][2] is not None and together[1][0][2].tzinfo is not None
    assert len(sent) == (1 if IS_POSTGRES else len(batch))
    async with database.session(write=False) as session, session.begin():
        connection = await driver_connection(session)
        assert await reads.rows_together(connection, []) == []
        assert await reads.rows_together(connection, batch[1:2]) == [alone[1]]


@postgres_only
async def test_an_autocommit_read_that_cannot_connect_is_a_503(
    database: Database, rep_customer: tuple[Org, str]
) -> None:
    """An autocommit read takes its connection straight from the pool, where SQLAlchemy does
    not wrap a failed connect: a database refusing connections (shutting down, restarting)
    must still be a 503, not a 500. The caller is remembered, so the read's connect is the
    request's first use of the database, as it is in the middle of a restart."""
    org, url = rep_customer
    down = Database(create_engine(get_settings(), PrivatePostgres.unused_url()))
    down.callers.listening = True
    down.callers.remember(down.callers.generation, org.east_rep1.actor, department.parse(None))
    app = create_app(get_settings(), down)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as reader:
            for path in (url, "/api/v1/customers"):
                answer = await reader.get(path, headers=org.east_rep1.headers)
                problem(answer, 503, "unavailable")
                assert answer.headers["retry-after"]
    finally:
        await down.dispose()
