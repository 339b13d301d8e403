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
from app.idempotency import purge_expired
from app.webhooks.delivery import run_deliveries

logger = logging.getLogger("salesdesk.worker")
HOUSEKEEPING_SECONDS = 3600


async def _housekeeping(database: Database, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            purged = await purge_expired(database)
            if purged:
                logger.info("purged %d expired idempotency keys", purged)
        except Exception:  # keep the worker alive through a database outage
            logger.exception("housekeeping failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HOUSEKEEPING_SECONDS)


async def run_forever(
    database: Database, settings: Settings | None = None, stop: asyncio.Event | None = None
) -> None:
    """Deliver webhooks and keep house until ``stop`` is set (or the task is cancelled)."""
    settings = settings or get_settings()
    stop = stop or asyncio.Event()
    await asyncio.gather(_housekeeping(database, stop), run_deliveries(database, settings, stop))
