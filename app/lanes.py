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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import Counter, Gauge

from app.errors import Unavailable

WAITING = Gauge("salesdesk_lane_waiting", "Requests waiting for a place in a lane", ["lane"])
RUNNING = Gauge("salesdesk_lane_running", "Requests running in a lane", ["lane"])
REFUSED = Counter(
    "salesdesk_lane_refused_total", "Requests answered 503 after waiting too long", ["lane"]
)


class Lane:
    """At most ``size`` requests at once (``size`` 0: no bound); the others wait their turn
    in order of arrival, for at most ``wait_seconds``."""

    def __init__(self, name: str, size: int, wait_seconds: float) -> None:
        self.name = name
        self.size = size
        self.wait_seconds = wait_seconds
        self._places = asyncio.Semaphore(size) if size > 0 else None
        self._waiting = WAITING.labels(name)
        self._running = RUNNING.labels(name)
        self._refused = REFUSED.labels(name)

    @asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        places = self._places
        if places is None:
            yield
            return
        if places.locked():
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
        else:
            await places.acquire()  # a free place: taken at once, no timer set
        self._running.inc()
        try:
            yield
        finally:
            self._running.dec()
            places.release()
