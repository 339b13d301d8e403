"""Test set-up: a real database built by the migrations, cleaned after every test.

``SALESDESK_TEST_DATABASE_URL`` picks the database (default: a SQLite file in a temporary
folder). PostgreSQL URLs get a fresh ``salesdesk_test`` database (or the one named).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="salesdesk-tests-"))
TEST_DATABASE_URL = os.environ.get(
    "SALESDESK_TEST_DATABASE_URL", f"sqlite+aiosqlite:///{_TMP / 'test.db'}"
)
os.environ["SALESDESK_DATABASE_URL"] = TEST_DATABASE_URL
os.environ["SALESDESK_SECRET_KEY"] = "test-secret-key-that-is-long-enough-for-hs256"
os.environ["SALESDESK_LOG_JSON"] = "false"
os.environ["SALESDESK_LOG_LEVEL"] = "WARNING"
os.environ.setdefault("SALESDESK_RATE_LIMIT_ENABLED", "false")

import httpx  # noqa: E402
from sqlalchemy import event, inspect, text  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

from app import reads  # noqa: E402
from app.config import get_settings  # noqa: E402
from app.db import Database, create_engine  # noqa: E402
from app.main import create_app  # noqa: E402
from app.migrations import upgrade  # noqa: E402

IS_POSTGRES = TEST_DATABASE_URL.startswith("postgresql")


async def _recreate_postgres_database(url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database="postgres",
    )
    try:
        name = parsed.database
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def migrated_url() -> str:
    """The schema comes from ``alembic upgrade head``, never from ``create_all``."""
    if IS_POSTGRES:
        asyncio.run(_recreate_postgres_database(TEST_DATABASE_URL))
    upgrade(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


@pytest.fixture(scope="session")
async def database(migrated_url: str) -> AsyncIterator[Database]:
    db = Database(create_engine(get_settings(), migrated_url))
    yield db
    await db.dispose()


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Every test starts from empty tables, whatever the last one committed."""
    yield
    if "database" not in request.fixturenames:
        return
    db: Database = request.getfixturevalue("database")
    # DELETE beats TRUNCATE on the handful of rows a test leaves behind. Only tables the
    # migrations made are emptied (a model without its migration is test_migrations' to flag).
    async with db.engine.begin() as conn:
        existing = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        for table in reversed(SQLModel.metadata.sorted_tables):
            if table.name in existing:
                await conn.execute(text(f'DELETE FROM "{table.name}"'))


@pytest.fixture(scope="session")
def app(database: Database):  # type: ignore[no-untyped-def]
    return create_app(get_settings(), database)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def sent() -> Iterator[list[str]]:
    """The SQL of every statement a Read (``app.reads``) sends during the test; clear it once
    the test's set-up is done."""
    seen: list[str] = []

    def observe(sql: str, _args: Any) -> None:
        seen.append(sql)

    reads.OBSERVERS.append(observe)
    yield seen
    reads.OBSERVERS.remove(observe)


@pytest.fixture
def executed(database: Database) -> Iterator[list[str]]:
    """The SQL of every statement the tests' engine executes during the test (the sessions'
    and Core's; a Read's pass it by, see ``sent``); clear it once the test's set-up is done."""
    seen: list[str] = []

    def observe(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement)

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", observe)
    yield seen
    event.remove(engine, "before_cursor_execute", observe)
