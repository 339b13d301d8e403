"""The worker's periodic jobs, run as the worker runs them."""

from __future__ import annotations

import asyncio

import pytest

from app.db import Database
from app.worker import JOBS, _every


@pytest.mark.parametrize(("seconds", "task", "done", "job"), JOBS, ids=[job[1] for job in JOBS])
async def test_each_periodic_job_runs_on_the_database(
    database: Database, seconds: float, task: str, done: str, job: object
) -> None:
    """Each job takes the database and answers how much it did: a job whose call is wrong
    would only be logged as a failure every round, never noticed."""
    count = await job(database)  # type: ignore[operator]
    assert isinstance(count, int) and count >= 0
    done % count  # the log line's format takes the count


async def test_a_round_of_a_job_runs_before_the_worker_stops(database: Database) -> None:
    """One round runs at once, then the wait ends as soon as the worker is told to stop."""
    stop = asyncio.Event()
    rounds: list[int] = []

    async def job(db: Database) -> int:
        rounds.append(1)
        stop.set()
        raise RuntimeError("a failing round is logged, not raised")

    await asyncio.wait_for(_every(3600, "test job", "did %d", job, database, stop), 30)
    assert rounds == [1]
