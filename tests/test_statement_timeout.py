"""PostgreSQL cancels any statement of the app's that runs longer than
``SALESDESK_DB_STATEMENT_TIMEOUT_SECONDS`` (waiting for a lock included): the request is
answered 503 with ``Retry-After``, nothing it did is kept, and its connection serves the
next request.

A test holds a lock on the customers from a connection of its own, so the app's statements
on them wait until PostgreSQL cancels them: nothing here depends on a slow query.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from app.db import Database, create_engine
from app.main import create_app
from app.models.customers import FollowUp
from tests.conftest import IS_POSTGRES
from tests.factories import client_for, make_customer, make_org, make_settings, problem

pytestmark = pytest.mark.skipif(not IS_POSTGRES, reason="statement_timeout is PostgreSQL's")

FOLLOW_UPS = "/api/v1/follow-ups"


@pytest.fixture
async def impatient(migrated_url: str) -> AsyncIterator[tuple[FastAPI, Database]]:
    """An app whose statements may run for 0.2 s, on the tests' database."""
    settings = make_settings(db_statement_timeout_seconds=0.2)
    database = Database(create_engine(settings, migrated_url))
    yield create_app(settings, database), database
    await database.dispose()


async def show_statement_timeout(database: Database) -> str:
    async with database.session(write=False) as session:
        return str((await session.execute(text("SHOW statement_timeout"))).scalar_one())


async def test_the_connections_carry_the_timeout(
    database: Database, impatient: tuple[FastAPI, Database], migrated_url: str
) -> None:
    assert await show_statement_timeout(database) == "30s"  # the default
    assert await show_statement_timeout(impatient[1]) == "200ms"
    unlimited = Database(create_engine(make_settings(db_statement_timeout_seconds=0), migrated_url))
    try:
        assert await show_statement_timeout(unlimited) == "0"
    finally:
        await unlimited.dispose()


async def test_a_statement_past_the_timeout_is_a_503_that_changes_nothing(
    database: Database, impatient: tuple[FastAPI, Database], migrated_url: str
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    app, _ = impatient
    rep = org.east_rep1.headers
    follow_up = {"customer_id": str(customer.id), "kind": "call", "status": "done"}
    locker = await asyncpg.connect(migrated_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with client_for(app) as client:
            await locker.execute("BEGIN; LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
            # A read on the driver connection (app.reads) and a write through the ORM; without
            # the timeout they would wait for the lock for ever (the test fails at 10 s).
            async with asyncio.timeout(10):
                answers = (
                    await client.get(f"/api/v1/customers/{customer.id}", headers=rep),
                    await client.post(FOLLOW_UPS, json=follow_up, headers=rep),
                )
            for answer in answers:
                body = problem(answer, 503, "unavailable")
                assert "too long" in body["detail"]
                assert answer.headers["retry-after"] == "5"
            await locker.execute("ROLLBACK")

            # The same connections answer once the lock is gone; the refused write left nothing.
            read = await client.get(f"/api/v1/customers/{customer.id}", headers=rep)
            assert read.status_code == 200, read.text
            async with database.session(write=False) as session:
                assert await session.scalar(select(func.count()).select_from(FollowUp)) == 0
            created = await client.post(FOLLOW_UPS, json=follow_up, headers=rep)
            assert created.status_code == 201, created.text
    finally:
        await locker.close()
