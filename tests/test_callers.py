"""Callers remembered between requests (app.callers): read once, forgotten when a user or the
settings change — in this process at commit, in others when PostgreSQL delivers the notice —
and never trusted while the process cannot hear changes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.callers import CHANNEL, LISTENER_NAME, CallerCache, listen
from app.config import get_settings
from app.db import Database, create_engine
from app.main import create_app
from app.models.people import Role
from app.permissions import Actor
from app.services import department
from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL
from tests.factories import Org, make_customer, make_org

postgres_only = pytest.mark.skipif(not IS_POSTGRES, reason="callers are remembered on PostgreSQL")

USERS = "/api/v1/users"


async def _eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def _listening(database: Database, **options: Any) -> AsyncIterator[asyncio.Task[None]]:
    """The app's change listener on ``database``, connected, for the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(listen(database.callers, database.engine.url, stop, **options))
    try:
        await _eventually(lambda: database.callers.listening)
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert not database.callers.listening


def _caller_reads(executed: list[str]) -> int:
    """How many of the statements executed read a caller (with the settings)."""
    return sum("FROM users LEFT OUTER JOIN department_settings" in sql for sql in executed)


@pytest.fixture
async def other_process() -> AsyncIterator[tuple[Database, httpx.AsyncClient]]:
    """A second app with its own engine and listener, as a second server process has."""
    database = Database(create_engine(get_settings(), TEST_DATABASE_URL))
    transport = httpx.ASGITransport(app=create_app(get_settings(), database))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield database, client
    await database.dispose()


async def _customer_url(database: Database, org: Org) -> str:
    customer = await make_customer(database, org.east_rep1)
    return f"/api/v1/customers/{customer.id}"


@pytest.fixture
def remembering(database: Database) -> Iterator[CallerCache]:
    """The app's cache trusted as if its listener were up, with no listener: whatever it
    forgets, this process's own commits made it forget."""
    database.callers.forget()
    database.callers.listening = True
    yield database.callers
    database.callers.listening = False
    database.callers.forget()


async def test_a_caller_is_read_once_until_this_process_changes_it(
    client: httpx.AsyncClient, database: Database, remembering: CallerCache, executed: list[str]
) -> None:
    org = await make_org(database)
    url = await _customer_url(database, org)
    executed.clear()  # what set-up read
    for _ in range(3):
        assert (await client.get(url, headers=org.east_rep1.headers)).status_code == 200
    assert _caller_reads(executed) == 1
    remembered = remembering.get(org.east_rep1.user.id)
    assert remembered is not None and remembered[0].region_id == org.east.id

    # Deactivated through the API: forgotten at commit, and the very next request is refused.
    answer = await client.patch(
        f"{USERS}/{org.east_rep1.user.id}", json={"is_active": False}, headers=org.director.headers
    )
    assert answer.status_code == 200, answer.text
    assert remembering.get(org.east_rep1.user.id) is None
    assert (await client.get(url, headers=org.east_rep1.headers)).status_code == 401
    assert remembering.get(org.east_rep1.user.id) is None  # inactive: not remembered
    assert _caller_reads(executed) == 3  # the director's, then the rep's second look


async def test_a_change_is_forgotten_at_once_after_the_engine_was_disposed(
    client: httpx.AsyncClient, database: Database, remembering: CallerCache
) -> None:
    """``Engine.dispose()`` replaces the connection pool, by which a committing session
    finds its cache: a change committed afterwards must still be forgotten at commit."""
    org = await make_org(database)
    url = await _customer_url(database, org)
    assert (await client.get(url, headers=org.east_rep1.headers)).status_code == 200
    assert remembering.get(org.east_rep1.user.id) is not None
    await database.engine.dispose()
    answer = await client.patch(
        f"{USERS}/{org.east_rep1.user.id}", json={"is_active": False}, headers=org.director.headers
    )
    assert answer.status_code == 200, answer.text
    assert remembering.get(org.east_rep1.user.id) is None
    assert (await client.get(url, headers=org.east_rep1.headers)).status_code == 401


@postgres_only
async def test_a_settings_change_is_what_the_next_request_uses(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    url = await _customer_url(database, org)
    async with _listening(database):
        assert (await client.get(url, headers=org.east_rep1.headers)).status_code == 200
        before = database.callers.get(org.east_rep1.user.id)
        assert before is not None and before[1].dormant_after_days == 180
        changed = await client.patch(
            "/api/v1/settings", json={"dormant_after_days": 45}, headers=org.director.headers
        )
        assert changed.status_code == 200, changed.text
        assert database.callers.get(org.east_rep1.user.id) is None
        assert (await client.get(url, headers=org.east_rep1.headers)).status_code == 200
        after = database.callers.get(org.east_rep1.user.id)
        assert after is not None and after[1].dormant_after_days == 45


@postgres_only
async def test_a_process_does_not_forget_again_when_its_own_notice_arrives(
    client: httpx.AsyncClient, database: Database
) -> None:
    """It forgot at its own commit; its notice, arriving after it read the caller again, must
    not make it forget that read (a notice's payload names the process that sent it)."""
    import asyncpg

    org = await make_org(database)
    payloads: asyncio.Queue[str] = asyncio.Queue()
    other = await asyncpg.connect(TEST_DATABASE_URL.replace("+asyncpg", ""))
    try:
        await other.add_listener(CHANNEL, lambda *notice: payloads.put_nowait(notice[3]))
        changed = await client.patch(
            "/api/v1/settings", json={"dormant_after_days": 60}, headers=org.director.headers
        )
        assert changed.status_code == 200, changed.text
        assert await asyncio.wait_for(payloads.get(), 5) == database.callers.sender
    finally:
        await other.close()

    callers = database.callers
    generation = callers.generation
    callers._on_notice(None, 0, CHANNEL, callers.sender)
    assert callers.generation == generation
    callers._on_notice(None, 0, CHANNEL, "another process")
    assert callers.generation == generation + 1


@postgres_only
async def test_another_process_forgets_when_postgres_delivers_the_notice(
    client: httpx.AsyncClient,
    database: Database,
    other_process: tuple[Database, httpx.AsyncClient],
) -> None:
    org = await make_org(database)
    url = await _customer_url(database, org)
    other, other_client = other_process
    manager = org.east_manager
    async with _listening(database), _listening(other):
        assert (await other_client.get(url, headers=manager.headers)).status_code == 200
        assert other.callers.get(manager.user.id) is not None
        generation = other.callers.generation

        # A change that rolls back sends nothing: the other process keeps what it knows.
        async with database.session() as session:
            async with session.begin():
                user = await session.get(type(manager.user), manager.user.id)
                assert user is not None
                user.full_name = "Renamed, then rolled back"
                await session.flush()
                await session.rollback()
        # The manager is moved out of the East region in this process...
        answer = await client.patch(
            f"{USERS}/{manager.user.id}",
            json={"role": "rep"},
            headers=org.director.headers,
        )
        assert answer.status_code == 200, answer.text
        # ...and the other forgets once the notice arrives (one notice: the rollback sent none).
        await _eventually(lambda: other.callers.generation != generation)
        assert other.callers.generation == generation + 1
        assert other.callers.get(manager.user.id) is None
        listed = await other_client.get("/api/v1/customers", headers=manager.headers)
        assert listed.status_code == 200
        assert listed.json()["items"] == []  # a rep now, owning none of them
        remembered = other.callers.get(manager.user.id)
        assert remembered is not None and remembered[0].role == "rep"


@postgres_only
async def test_nothing_is_trusted_while_the_listener_is_down(
    client: httpx.AsyncClient, database: Database, executed: list[str]
) -> None:
    org = await make_org(database)
    url = await _customer_url(database, org)
    executed.clear()  # what set-up read
    async with _listening(database, retry_seconds=0.3, check_seconds=0.2):
        assert (await client.get(url, headers=org.east_rep1.headers)).status_code == 200
        assert database.callers.get(org.east_rep1.user.id) is not None
        # The listening connection dies (as in a database restart)...
        async with database.engine.begin() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = :name"
                ),
                {"name": LISTENER_NAME},
            )
        await _eventually(lambda: not database.callers.listening)
        assert killed >= 1
        assert database.callers.get(org.east_rep1.user.id) is None
        # ...so a change it cannot hear of (plain SQL, no notice) is still seen at once.
        async with database.engine.begin() as conn:
            await conn.execute(
                text("UPDATE users SET is_active = false WHERE id = :id"),
                {"id": org.east_rep1.user.id},
            )
        count = _caller_reads(executed)
        assert (await client.get(url, headers=org.east_rep1.headers)).status_code == 401
        assert _caller_reads(executed) == count + 1
        # Connected again, it starts from nothing and remembers anew.
        await _eventually(lambda: database.callers.listening)
        rep2 = org.east_rep2
        for _ in range(2):
            assert (await client.get("/api/v1/customers", headers=rep2.headers)).status_code == 200
        assert _caller_reads(executed) == count + 2


async def test_a_read_that_began_before_a_change_is_not_remembered() -> None:
    engine = create_engine(get_settings(), TEST_DATABASE_URL)  # never connects
    cache = CallerCache(engine)
    cache.listening = True
    actor = Actor(id=uuid.uuid4(), role=Role.REP, region_id=uuid.uuid4())
    settings = department.parse(None)
    generation = cache.generation
    cache.forget()  # a change arrived while the read was in flight
    cache.remember(generation, actor, settings)
    assert cache.get(actor.id) is None
    cache.remember(cache.generation, actor, settings)
    assert cache.get(actor.id) == (actor, settings)
    cache.listening = False  # not hearing changes: nothing is trusted
    assert cache.get(actor.id) is None
    await engine.dispose()
