"""The periodic sweep escalates each breach exactly once: run again, run twice at the same
time in one process, and run by two OS processes at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta

from sqlalchemy import func, select

from app.db import Database
from app.models.complaints import Complaint, ComplaintStatus, Severity
from app.models.platform import Event
from app.models.types import utcnow
from app.services.complaint_sla import escalate, sweep
from tests.complaint_helpers import make_complaint
from tests.factories import Org, make_customer, make_org

# One sweeper process: connects first, then waits for the common start time given as its
# first argument, so both processes sweep at the same moment, in batches of the second
# argument's size; prints how many it escalated.
SWEEPER = """
import asyncio, sys, time
import app.models
from app.config import get_settings
from app.db import Database, create_engine
from app.services.complaint_sla import sweep

async def main():
    database = Database(create_engine(get_settings()))
    try:
        async with database.engine.connect():
            pass
        time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
        print(await sweep(database, batch_size=int(sys.argv[2])))
    finally:
        await database.dispose()

asyncio.run(main())
"""


async def _breached_complaints(database: Database, org: Org, count: int) -> set[uuid.UUID]:
    """``count`` complaints past their acknowledge time, never escalated, over two regions."""
    made = set()
    long_ago = utcnow() - timedelta(days=2)
    customers = [
        await make_customer(database, org.east_rep1),
        await make_customer(database, org.north_rep),
    ]
    for n in range(count):
        complaint = await make_complaint(
            database,
            org.east_rep1 if n % 2 == 0 else org.north_rep,
            severity=Severity.CRITICAL if n % 5 == 0 else Severity.LOW,
            received_at=long_ago + timedelta(minutes=n),
            customer=customers[n % 2],
        )
        made.add(complaint.id)
    return made


async def _escalations(database: Database) -> list[uuid.UUID]:
    async with database.session(write=False) as session:
        stmt = select(Event.entity_id).where(Event.type == "complaint.escalated")
        return [row for row in (await session.scalars(stmt)).all() if row is not None]


async def _escalated_rows(database: Database) -> int:
    async with database.session(write=False) as session:
        stmt = (
            select(func.count()).select_from(Complaint).where(Complaint.escalated_at.is_not(None))
        )
        return int(await session.scalar(stmt) or 0)


async def test_sweep_escalates_breaches_only_and_only_once(database: Database) -> None:
    org = await make_org(database)
    breached = await _breached_complaints(database, org, 6)
    on_time = await make_complaint(database, org.east_rep1)
    done_in_time = await make_complaint(
        database, org.east_rep1, ComplaintStatus.CLOSED, received_at=utcnow() - timedelta(days=40)
    )

    assert await sweep(database) == 6
    assert await sweep(database) == 0
    escalations = await _escalations(database)
    assert sorted(escalations) == sorted(breached)
    assert on_time.id not in escalations and done_in_time.id not in escalations
    async with database.session(write=False) as session:
        events = (
            await session.scalars(select(Event).where(Event.type == "complaint.escalated"))
        ).all()
    for event in events:
        expected = (
            {org.east_manager.id} if event.region_id == org.east.id else {org.north_manager.id}
        )
        if event.data["severity"] == "critical":
            expected.add(org.director.id)
        assert {uuid.UUID(i) for i in event.data["notify_user_ids"]} == expected
        assert event.actor_id is None  # the worker acts for nobody


async def test_two_concurrent_sweeps_escalate_each_breach_once(database: Database) -> None:
    org = await make_org(database)
    breached = await _breached_complaints(database, org, 30)

    # Small batches: many short transactions each, interleaving with the other sweeper's.
    counts = await asyncio.gather(sweep(database, batch_size=3), sweep(database, batch_size=3))

    assert sum(counts) == 30
    escalations = await _escalations(database)
    assert len(escalations) == 30 and set(escalations) == breached
    assert await _escalated_rows(database) == 30


async def test_two_sessions_racing_on_one_complaint_escalate_it_once(database: Database) -> None:
    org = await make_org(database)
    complaint = await make_complaint(
        database, org.east_rep1, received_at=utcnow() - timedelta(hours=9)
    )
    # Both racers hold a copy read before either wrote: only the conditional UPDATE decides.
    copies = []
    for _ in range(2):
        async with database.session(write=False) as session:
            copies.append(await session.get_one(Complaint, complaint.id))

    async def race(copy: Complaint) -> bool:
        async with database.session() as session, session.begin():
            return await escalate(session, copy)

    results = await asyncio.gather(race(copies[0]), race(copies[1]))

    assert sorted(results) == [False, True]
    assert await _escalations(database) == [complaint.id]
    # The loser's copy now shows the winner's time.
    assert copies[0].escalated_at == copies[1].escalated_at is not None


async def test_two_sweeper_processes_escalate_each_breach_once(database: Database) -> None:
    org = await make_org(database)
    breached = await _breached_complaints(database, org, 40)
    start_at = str(time.time() + 4)
    env = {**os.environ}
    sweepers = [
        subprocess.Popen(  # noqa: ASYNC220  (two real processes are the point)
            [sys.executable, "-c", SWEEPER, start_at, "3"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [await asyncio.to_thread(p.communicate, timeout=120) for p in sweepers]

    for process, (_, err) in zip(sweepers, outputs, strict=True):
        assert process.returncode == 0, err
    counts = [int(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(counts) == 40
    escalations = await _escalations(database)
    assert len(escalations) == 40 and set(escalations) == breached
    assert await _escalated_rows(database) == 40
