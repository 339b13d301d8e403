"""Background work that needs no request: webhook delivery and housekeeping.

It runs inside ``salesdesk serve`` (unless ``--no-worker``) and as ``salesdesk worker``
processes; any number of them may share one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

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


async def _housekeeping(database: Database, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            purged = await purge_expired(database)
            if purged:
                logger.info("purged %d expired idempotency keys", purged)
        except Exception as exc:  # keep the worker alive through a database outage
            _log_failure("housekeeping", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HOUSEKEEPING_SECONDS)


async def _complaint_sweeps(database: Database, stop: asyncio.Event) -> None:
    # Breaches are also escalated when a complaint is read or changed; this catches the ones
    # nobody touches. Any number of workers may sweep at once: each breach escalates once.
    while not stop.is_set():
        try:
            escalated = await complaint_sla.sweep(database)
            if escalated:
                logger.info("escalated %d breached complaints", escalated)
        except Exception as exc:  # keep the worker alive through a database outage
            _log_failure("complaint sweep", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), COMPLAINT_SWEEP_SECONDS)


async def _contract_review_sweeps(database: Database, stop: asyncio.Event) -> None:
    # Reviews past their due time raise contract.review_overdue once per review step, and
    # installments that fell overdue installment.overdue once each, however many workers sweep.
    while not stop.is_set():
        try:
            async with database.session() as session, session.begin():
                flagged = await contract_workflow.flag_overdue_reviews(session)
            if flagged:
                logger.info("flagged %d overdue contract reviews", flagged)
        except Exception as exc:  # keep the worker alive through a database outage
            _log_failure("contract review sweep", exc)
        try:
            async with database.session() as session, session.begin():
                reported = await collections.flag_overdue_installments(session)
            if reported:
                logger.info("reported %d overdue installments for collection", reported)
        except Exception as exc:  # keep the worker alive through a database outage
            _log_failure("overdue installment sweep", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CONTRACT_REVIEW_SWEEP_SECONDS)


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


async def _quote_expiries(database: Database, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            expired = await expire_quotes(database)
            if expired:
                logger.info("expired %d quotes past their validity", expired)
        except Exception as exc:  # keep the worker alive through a database outage
            _log_failure("quote expiry", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), QUOTE_EXPIRY_SECONDS)


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


async def _classification_ageing(database: Database, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            changed = await reclassify_aged_customers(database)
            if changed:
                logger.info("reclassified %d customers whose revenue aged", changed)
        except Exception as exc:  # keep the worker alive through a database outage
            _log_failure("classification ageing", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CLASSIFICATION_AGEING_SECONDS)


async def run_forever(
    database: Database, settings: Settings | None = None, stop: asyncio.Event | None = None
) -> None:
    """Deliver webhooks and keep house until ``stop`` is set (or the task is cancelled)."""
    settings = settings or get_settings()
    stop = stop or asyncio.Event()
    await asyncio.gather(
        _housekeeping(database, stop),
        _complaint_sweeps(database, stop),
        _contract_review_sweeps(database, stop),
        _quote_expiries(database, stop),
        _classification_ageing(database, stop),
        run_deliveries(database, settings, stop),
    )
