"""The connection pool serves those waiting for a connection in the order they began to
wait, and loses no connection when a waiter gives up (app.pool)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.db import Database
from app.pool import FairAsyncQueuePool


def _pool_of_one(url: str, timeout: float) -> AsyncEngine:
    """An engine with one connection, so every other caller waits (``timeout`` seconds)."""
    return create_async_engine(
        url, poolclass=FairAsyncQueuePool, pool_size=1, max_overflow=0, pool_timeout=timeout
    )


@pytest.fixture
async def one_connection(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    engine = _pool_of_one(migrated_url, timeout=5)
    yield engine
    await engine.dispose()


async def _waiting(engine: AsyncEngine, count: int) -> None:
    """Until ``count`` callers wait for the pool's connection."""
    for _ in range(200):
        if len(engine.pool._pool._waiters) == count:  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{count} callers never waited")


def test_the_app_uses_the_fair_pool(database: Database) -> None:
    assert isinstance(database.engine.pool, FairAsyncQueuePool)


async def test_a_returned_connection_goes_to_the_longest_waiter(
    one_connection: AsyncEngine,
) -> None:
    served: list[str] = []

    async def ask(name: str) -> None:
        async with one_connection.connect() as connection:
            served.append(name)
            await connection.execute(text("SELECT 1"))

    held = await one_connection.connect()
    waiting = [asyncio.create_task(ask(name)) for name in ("first", "second", "third")]
    await _waiting(one_connection, 3)
    # Returning the connection and asking again in the same turn of the event loop: the
    # stock pool lets this caller take it before the woken waiter runs.
    await held.close()
    async with one_connection.connect() as connection:
        served.append("latecomer")
        await connection.execute(text("SELECT 1"))
    await asyncio.gather(*waiting)

    assert served == ["first", "second", "third", "latecomer"]
    assert one_connection.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_waiter_cancelled_as_it_is_served_passes_the_connection_on(
    one_connection: AsyncEngine,
) -> None:
    async def ask() -> int:
        async with one_connection.connect() as connection:
            return int(await connection.scalar(text("SELECT 1")))

    held = await one_connection.connect()
    cancelled = asyncio.create_task(ask())
    served = asyncio.create_task(ask())
    await _waiting(one_connection, 2)
    await held.close()  # handed to the first waiter, which has not run yet...
    cancelled.cancel()  # ...and is cancelled before it does (a client gone, a timeout)

    assert await asyncio.wait_for(served, 5) == 1
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert one_connection.pool.checkedout() == 0  # type: ignore[attr-defined]
    async with one_connection.connect() as connection:
        assert await connection.scalar(text("SELECT 1")) == 1


async def test_a_waiter_that_times_out_leaves_the_line(migrated_url: str) -> None:
    engine = _pool_of_one(migrated_url, timeout=0.2)
    try:
        held = await engine.connect()
        with pytest.raises(exc.TimeoutError):
            await engine.connect()
        assert len(engine.pool._pool._waiters) == 0  # type: ignore[attr-defined]
        await held.close()
        # The idle connection is taken at once: nobody is left in line before this caller.
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
