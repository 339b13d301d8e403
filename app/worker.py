"""Background work that needs no request: webhook delivery and housekeeping.

It runs inside ``salesdesk serve`` (unless ``--no-worker``) and as ``salesdesk worker``
processes; any number of them may share one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from app.config import Settings, get_settings
from app.db import Database
from app.errors import database_unavailable
from app.idempotency import purge_expired
from app.services import collections, complaint_sla, contract_workflow, customers, quotes
from app.webhooks.delivery import run_deliveries

logger = logging.getLogger("salesdesk.worker")
HOUSEKEEPING_SECONDS = 3600
COMPLAINT_SWEEP_SECONDS = 60
CONTRACT_REVIEW_SWEEP_SECONDS = 60
# Validity is a date: an hourly look expires a quote within the hour its last day ends.
QUOTE_EXPIRY_SECONDS = 3600
# Revenue ages out of the suggested class by the day; a week's look back reaches what a
# stopped worker missed (reclassifying twice changes nothing).
CLASSIFICATION_AGEING_SECONDS = 24 * 3600
CLASSIFICATION_LOOKBACK_DAYS = 7
CLASSIFICATION_BATCH = 100
_MAX_BATCHES = 1000  # a bound on one pass, however many rows arrive meanwhile


def _log_failure(task: str, exc: Exception) -> None:
    # An outage is expected now and then: one line, not a traceback; anything else is a bug.
    if database_unavailable(exc):
        logger.warning("%s skipped: the database is unavailable: %s", task, exc)
    else:
        logger.exception("%s failed", task, exc_info=exc)


Job = Callable[[Database], Awaitable[int]]


async def _every(
    seconds: float, task: str, done: str, job: Job, database: Database, stop: asyncio.Event
) -> None:
    """Run ``job`` now and then every ``seconds`` until ``stop``; log ``done`` (a format
    with the count the job returns) when it did something. A failure is logged and the next
    round runs as planned, so the worker lives through a database outage."""
    while not stop.is_set():
        try:
            count = await job(database)
            if count:
                logger.info(done, count)
        except Exception as exc:
            _log_failure(task, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


async def flag_overdue_reviews(database: Database) -> int:
    # Reviews past their due time raise contract.review_overdue once per review step,
    # however many workers sweep.
    async with database.session() as session, session.begin():
        return await contract_workflow.flag_overdue_reviews(session)


async def flag_overdue_installments(database: Database) -> int:
    # Installments that fell overdue raise installment.overdue once each.
    async with database.session() as session, session.begin():
        return await collections.flag_overdue_installments(session)


async def expire_quotes(database: Database, batch_size: int = quotes.EXPIRY_BATCH) -> int:
    """Expire every sent quote past its validity, a batch a transaction; returns how many."""
    total = 0
    for _ in range(_MAX_BATCHES):
        async with database.session() as session, session.begin():
            expired = await quotes.expire_overdue(session, batch_size)
        total += expired
        if expired < batch_size:
            break
    return total


async def reclassify_aged_customers(
    database: Database,
    lookback_days: int = CLASSIFICATION_LOOKBACK_DAYS,
    batch_size: int = CLASSIFICATION_BATCH,
) -> int:
    """Recompute the suggested class of customers whose signed revenue turned 12 months
    old lately, a batch a transaction; returns how many changed."""
    async with database.session(write=False) as session:
        aged = await customers.aged_customers(session, lookback_days)
    changed = 0
    for start in range(0, len(aged), batch_size):
        async with database.session() as session, session.begin():
            for customer_id in aged[start : start + batch_size]:
                customer = await customers.locked_customer(session, customer_id)
                changed += await customers.reclassify(session, customer)
    return changed


# Each periodic job: how often, its name in the log, what its count means, the job. Any
# number of workers may run them at once: each job's marks make its work happen once.
# (Breaches are also escalated when a complaint is read or changed; the sweep catches the
# ones nobody touches.)
JOBS: list[tuple[float, str, str, Job]] = [
    (HOUSEKEEPING_SECONDS, "housekeeping", "purged %d expired idempotency keys", purge_expired),
    (
        COMPLAINT_SWEEP_SECONDS,
        "complaint sweep",
        "escalated %d breached complaints",
        complaint_sla.sweep,
    ),
    (
        CONTRACT_REVIEW_SWEEP_SECONDS,
        "contract review sweep",
        "flagged %d overdue contract reviews",
        flag_overdue_reviews,
    ),
    (
        CONTRACT_REVIEW_SWEEP_SECONDS,
        "overdue installment sweep",
        "reported %d overdue installments for collection",
        flag_overdue_installments,
    ),
    (
        QUOTE_EXPIRY_SECONDS,
        "quote expiry",
        "expired %d quotes past their validity",
        expire_quotes,
    ),
    (
        CLASSIFICATION_AGEING_SECONDS,
        "classification ageing",
        "reclassified %d customers whose revenue aged",
        reclassify_aged_customers,
    ),
]


async def run_forever(
    database: Database, settings: Settings | None = None, stop: asyncio.Event | None = None
) -> None:
    """Deliver webhooks and keep house until ``stop`` is set (or the task is cancelled)."""
    settings = settings or get_settings()
    stop = stop or asyncio.Event()
    await asyncio.gather(
        *(_every(*job, database, stop) for job in JOBS),
        run_deliveries(database, settings, stop),
    )
