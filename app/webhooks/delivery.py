"""Webhook delivery: fan-out from the outbox, then claim, sign, send, log and retry.

The ``events`` table is the outbox. A worker round does two things, each in its own short
transaction, so any number of workers (in ``salesdesk serve`` and ``salesdesk worker``
processes) can share one database:

1. Dispatch (``app.webhooks.dispatch``): lock undispatched events (``FOR UPDATE SKIP
   LOCKED``), add one delivery per subscribed active endpoint, mark the events dispatched,
   commit. An event is dispatched exactly once, whenever its transaction commits: nothing
   is skipped the way a cursor over ``seq`` would skip a late committer.
2. Deliver: lock due deliveries (``FOR UPDATE SKIP LOCKED``), reserve the next attempt number,
   write the attempt row and push ``next_attempt_at`` out by a lease, commit; then send; then
   store the answer. An attempt number is reserved once, so no two workers ever send the same
   attempt. A worker that dies mid-send leaves its attempt unanswered; when the lease ends the
   delivery is due again and the next attempt goes out (at least once, never lost).

On SQLite the writers queue on the database lock (``BEGIN IMMEDIATE``), which gives the same
guarantees with one writer at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.config import Settings
from app.db import Database
from app.errors import database_unavailable
from app.models.types import utcnow
from app.models.webhooks import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookRead,
    WebhookSecret,
)
from app.webhooks.dispatch import dispatch_events
from app.webhooks.messages import check_resolved_host, parse_retry_delays, signature

logger = logging.getLogger("salesdesk.webhooks")

DISABLE_AFTER = timedelta(days=5)
EXCERPT_BYTES = 1024
CLAIM_BATCH = 20
USER_AGENT = "Salesdesk-Webhooks/1.0"
ABANDONED = "No answer was recorded: the worker stopped or ran out of time during this attempt."


@dataclass(frozen=True)
class _Job:
    delivery_id: uuid.UUID
    number: int
    url: str
    message_id: uuid.UUID
    payload: str
    secrets: list[str]
    send_by: datetime


@dataclass
class _Outcome:
    ok: bool = False
    status_code: int | None = None
    latency_ms: int | None = None
    excerpt: str | None = None
    error: str | None = None


class DeliveryWorker:
    """One worker's rounds of dispatch and delivery; safe to run beside any number of others."""

    def __init__(
        self, database: Database, settings: Settings, client: httpx.AsyncClient | None = None
    ) -> None:
        self.database = database
        self.delays = parse_retry_delays(settings.webhook_retry_delays)
        self.timeout = settings.webhook_timeout_seconds
        # A send starts at once and takes at most the timeout; the rest is slack for storing
        # the answer. A send that cannot start within timeout + 1 s is not made at all.
        self.lease = timedelta(seconds=2 * self.timeout + 1)
        self.allow_private = settings.webhook_allow_private_urls
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def run_once(self) -> bool:
        """One round; True when it found work (so the caller should not sleep)."""
        dispatched = await self.dispatch()
        delivered = await self.deliver_due()
        return bool(dispatched or delivered)

    # Dispatch ---------------------------------------------------------------------------

    async def dispatch(self) -> int:
        """Turn undispatched events into deliveries; returns how many events it took."""
        return await dispatch_events(self.database, max_attempts=len(self.delays) + 1)

    # Delivery ---------------------------------------------------------------------------

    def _due(self, now: datetime) -> Select[tuple[WebhookDelivery]]:
        return (
            select(WebhookDelivery)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookDelivery.status == WebhookDeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now,
                WebhookEndpoint.is_active,
            )
        )

    async def deliver_due(self) -> int:
        """Claim, send and record one batch of due deliveries; returns how many it sent."""
        jobs = await self._claim()
        await asyncio.gather(*(self._send_and_record(job) for job in jobs))
        return len(jobs)

    async def _claim(self) -> list[_Job]:
        now = utcnow()
        async with self.database.session(write=False) as session:
            if (await session.scalars(self._due(now).limit(1))).first() is None:
                return []
        async with self.database.session() as session, session.begin():
            rows = (
                await session.scalars(
                    self._due(now)
                    .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.created_at)
                    .limit(CLAIM_BATCH)
                    .with_for_update(skip_locked=True, of=WebhookDelivery)
                )
            ).all()
            if not rows:
                return []
            await session.execute(
                update(WebhookAttempt)
                .where(
                    WebhookAttempt.delivery_id.in_([d.id for d in rows]),
                    WebhookAttempt.finished_at.is_(None),
                )
                .values(finished_at=now, error=ABANDONED)
            )
            secrets = await self._secrets(session, {d.endpoint_id for d in rows}, now)
            urls = dict(
                (
                    await session.execute(
                        select(WebhookEndpoint.id, WebhookEndpoint.url).where(
                            WebhookEndpoint.id.in_({d.endpoint_id for d in rows})
                        )
                    )
                ).all()
            )
            jobs = []
            for delivery in rows:
                delivery.attempts += 1
                delivery.last_attempt_at = now
                delivery.next_attempt_at = now + self.lease
                session.add(WebhookAttempt(delivery_id=delivery.id, number=delivery.attempts))
                jobs.append(
                    _Job(
                        delivery_id=delivery.id,
                        number=delivery.attempts,
                        url=urls[delivery.endpoint_id],
                        message_id=delivery.message_id,
                        payload=delivery.payload,
                        secrets=secrets.get(delivery.endpoint_id, []),
                        send_by=now + self.lease - timedelta(seconds=self.timeout),
                    )
                )
        return jobs

    @staticmethod
    async def _secrets(
        session: AsyncSession, endpoint_ids: set[uuid.UUID], now: datetime
    ) -> dict[uuid.UUID, list[str]]:
        rows = await session.execute(
            select(WebhookSecret.endpoint_id, WebhookSecret.secret)
            .where(
                WebhookSecret.endpoint_id.in_(endpoint_ids),
                or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > now),
            )
            .order_by(WebhookSecret.created_at.desc())
        )
        found: dict[uuid.UUID, list[str]] = {}
        for endpoint_id, secret in rows:
            found.setdefault(endpoint_id, []).append(secret)
        return found

    async def _send_and_record(self, job: _Job) -> None:
        try:
            outcome = await self._send(job)
        except Exception as exc:  # a bug must not leave the attempt unanswered
            logger.exception("webhook send failed unexpectedly")
            outcome = _Outcome(error=f"Internal error: {type(exc).__name__}")
        try:
            await self._record(job, outcome)
        except Exception as exc:  # the lease expires and the delivery is tried again
            if database_unavailable(exc):
                logger.warning(
                    "could not record webhook attempt %s/%s: the database is unavailable",
                    job.delivery_id,
                    job.number,
                )
            else:
                logger.exception(
                    "could not record webhook attempt %s/%s", job.delivery_id, job.number
                )

    async def _send(self, job: _Job) -> _Outcome:
        if utcnow() > job.send_by:
            # This process stalled past its lease: another worker may own the delivery now.
            return _Outcome(error="Not sent: the lease ran out before the request could start.")
        if not job.secrets:
            return _Outcome(error="Not sent: the endpoint has no signing secret.")
        started = time.perf_counter()
        outcome = _Outcome()
        try:
            async with asyncio.timeout(self.timeout):
                if not self.allow_private and (refusal := await check_resolved_host(job.url)):
                    return _Outcome(error=refusal)
                at = datetime.fromtimestamp(int(time.time()), UTC)
                headers = {
                    "content-type": "application/json",
                    "webhook-id": str(job.message_id),
                    "webhook-timestamp": str(int(at.timestamp())),
                    "webhook-signature": signature(
                        job.secrets, str(job.message_id), at, job.payload
                    ),
                }
                request = self.client.build_request(
                    "POST", job.url, content=job.payload.encode(), headers=headers
                )
                response = await self.client.send(request, stream=True)
                try:
                    outcome.status_code = response.status_code
                    outcome.excerpt = await _excerpt(response)
                finally:
                    await response.aclose()
            outcome.ok = 200 <= response.status_code < 300
        except (TimeoutError, httpx.TimeoutException):
            outcome.error = f"Timed out after {self.timeout:g} s."
        except httpx.HTTPError as exc:
            outcome.error = f"{type(exc).__name__}: {exc or 'request failed'}"[:500]
        except OSError as exc:  # name resolution
            outcome.error = f"Could not reach the host: {exc}"[:500]
        outcome.latency_ms = round((time.perf_counter() - started) * 1000)
        return outcome

    async def _record(self, job: _Job, outcome: _Outcome) -> None:
        async with self.database.session() as session, session.begin():
            delivery = (
                await session.scalars(
                    select(WebhookDelivery)
                    .where(WebhookDelivery.id == job.delivery_id)
                    .with_for_update()
                )
            ).first()
            if delivery is None:  # the endpoint was deleted meanwhile
                return
            now = utcnow()
            attempt = (
                await session.scalars(
                    select(WebhookAttempt).where(
                        WebhookAttempt.delivery_id == job.delivery_id,
                        WebhookAttempt.number == job.number,
                    )
                )
            ).first()
            if attempt is not None:
                attempt.finished_at = now
                attempt.succeeded = outcome.ok
                attempt.status_code = outcome.status_code
                attempt.latency_ms = outcome.latency_ms
                attempt.response_excerpt = outcome.excerpt
                attempt.error = outcome.error
            if outcome.ok:
                # A success settles the delivery, whoever holds the latest attempt.
                delivery.status = WebhookDeliveryStatus.SUCCEEDED
                delivery.next_attempt_at = None
                delivery.last_status_code, delivery.last_error = outcome.status_code, None
                await session.execute(
                    update(WebhookEndpoint)
                    .where(
                        WebhookEndpoint.id == delivery.endpoint_id,
                        WebhookEndpoint.failing_since.is_not(None),
                    )
                    .values(failing_since=None, updated_at=WebhookEndpoint.updated_at)
                )
                return
            if delivery.status == WebhookDeliveryStatus.PENDING and delivery.attempts == job.number:
                delivery.last_status_code, delivery.last_error = outcome.status_code, outcome.error
                if job.number >= delivery.max_attempts:
                    delivery.status = WebhookDeliveryStatus.FAILED
                    delivery.next_attempt_at = None
                else:
                    # Past the list (the setting was shortened since) the last delay repeats.
                    delay = self.delays[min(job.number, len(self.delays)) - 1] if self.delays else 0
                    delivery.next_attempt_at = now + timedelta(seconds=delay)
            await _note_failure(session, delivery.endpoint_id, now)


async def _excerpt(response: httpx.Response) -> str:
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        buffer += chunk
        if len(buffer) >= EXCERPT_BYTES:
            break
    return bytes(buffer[:EXCERPT_BYTES]).decode("utf-8", errors="replace")


async def _note_failure(session: AsyncSession, endpoint_id: uuid.UUID, now: datetime) -> None:
    """Start the endpoint's failure streak, or disable it when the streak is five days old."""
    started = await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_(None))
        .values(failing_since=now, updated_at=WebhookEndpoint.updated_at)
    )
    if started.rowcount:  # type: ignore[attr-defined]
        return
    endpoint = (
        await session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).with_for_update()
        )
    ).first()
    if (
        endpoint is None
        or not endpoint.is_active
        or endpoint.failing_since is None
        or endpoint.failing_since > now - DISABLE_AFTER
    ):
        return
    endpoint.is_active = False
    endpoint.disabled_reason = (
        f"Every attempt failed for {DISABLE_AFTER.days} days "
        f"(since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC)."
    )
    await session.flush()
    events.record(session, "webhook.disabled", endpoint, WebhookRead.model_validate(endpoint))
    logger.warning("webhook endpoint %s disabled after five days of failures", endpoint_id)


async def run_deliveries(
    database: Database, settings: Settings, stop: asyncio.Event | None = None
) -> None:
    """Work rounds until ``stop`` is set, sleeping ``webhook_poll_seconds`` when idle."""
    stop = stop or asyncio.Event()
    worker = DeliveryWorker(database, settings)
    database_down = False
    try:
        while not stop.is_set():
            try:
                busy = await worker.run_once()
                if database_down:
                    logger.warning("the database is back: webhook delivery resumes")
                    database_down = False
            except Exception as exc:  # keep delivering through a database outage
                if not database_unavailable(exc):
                    logger.exception("webhook delivery round failed")
                elif not database_down:
                    # One line per outage, not a traceback every poll.
                    logger.warning("webhook delivery waits for the database: %s", exc)
                    database_down = True
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.webhook_poll_seconds)
    finally:
        await worker.aclose()
