"""A bound on how many requests of one kind run at once in a process (a bulkhead).

The reports (``/api/v1/performance/*``) are a few long statements each: a region's summary
is a few milliseconds of PostgreSQL's CPU on the demo data and a company's about a second
at scale, where a read is a tenth of a millisecond. Unbounded, a burst of them takes every
pooled connection, and every other request waits for one; and twenty reports at once on a
database with two cores finish no sooner than four at a time would, they only all finish
late. A report therefore waits for a place in the reports' lane before it opens its
transaction, so it holds no connection while it waits; one that waits longer than the
lane allows is answered 503 with ``Retry-After``, as when the database is unreachable.

Each process has its own lane: with several workers, up to workers × size reports run at
once (``SALESDESK_REPORT_CONCURRENCY``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import Counter, Gauge

from app.errors import Unavailable

WAITING = Gauge("salesdesk_lane_waiting", "Requests waiting for a place in a lane", ["lane"])
RUNNING = Gauge("salesdesk_lane_running", "Requests running in a lane", ["lane"])
REFUSED = Counter(
    "salesdesk_lane_refused_total", "Requests answered 503 after waiting too long", ["lane"]
)
ABANDONED = Counter(
    "salesdesk_lane_abandoned_total",
    "Requests not run because their client left while they waited",
    ["lane"],
)


class Lane:
    """At most ``size`` requests at once (``size`` 0: no bound); the others wait their turn
    in order of arrival, for at most ``wait_seconds``. A request that waited at least
    ``check_client_after`` seconds is worth asking whether its client is still there
    (``stale``): a client that gave up will not read the answer."""

    def __init__(
        self, name: str, size: int, wait_seconds: float, check_client_after: float = 1.0
    ) -> None:
        self.name = name
        self.wait_seconds = wait_seconds
        self.check_client_after = check_client_after
        self._places = asyncio.Semaphore(size) if size > 0 else None
        self._waiting = WAITING.labels(name)
        self._running = RUNNING.labels(name)
        self._refused = REFUSED.labels(name)
        self._abandoned = ABANDONED.labels(name)

    @asynccontextmanager
    async def place(self) -> AsyncIterator[bool]:
        """Hold a place while the block runs; the block is told whether it waited long
        enough (``check_client_after``) to ask if its client is still there."""
        places = self._places
        if places is None:
            yield False
            return
        stale = False
        if places.locked():
            began = time.monotonic()
            self._waiting.inc()
            try:
                async with asyncio.timeout(self.wait_seconds):
                    await places.acquire()
            except TimeoutError:
                self._refused.inc()
                raise Unavailable(
                    f"Too many {self.name} are running; retry shortly.",
                    retry_after=max(1, math.ceil(self.wait_seconds)),
                ) from None
            finally:
                self._waiting.dec()
            stale = time.monotonic() - began >= self.check_client_after
        else:
            await places.acquire()  # a free place: taken at once, no timer set
        self._running.inc()
        try:
            yield stale
        finally:
            self._running.dec()
            places.release()

    def abandoned(self) -> None:
        """Count a request dropped after its wait because its client had gone."""
        self._abandoned.inc()
