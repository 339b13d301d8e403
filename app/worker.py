"""Background work that needs no request: housekeeping now, webhook delivery later."""

from __future__ import annotations

import asyncio
import logging

from app.db import Database
from app.idempotency import purge_expired

logger = logging.getLogger("salesdesk.worker")
HOUSEKEEPING_SECONDS = 3600


async def run_forever(database: Database) -> None:
    while True:
        try:
            purged = await purge_expired(database)
            if purged:
                logger.info("purged %d expired idempotency keys", purged)
        except Exception:  # keep the worker alive through a database outage
            logger.exception("housekeeping failed")
        await asyncio.sleep(HOUSEKEEPING_SECONDS)
