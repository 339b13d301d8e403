"""Webhook dispatch: the outbox's events fanned out into one delivery per subscribed endpoint.

Step 1 of a worker round (``app.webhooks.delivery``): lock undispatched events (``FOR UPDATE
SKIP LOCKED``), add one delivery per subscribed active endpoint, mark the events dispatched,
commit. An event is dispatched exactly once, whenever its transaction commits: nothing is
skipped the way a cursor over ``seq`` would skip a late committer.
"""

from __future__ import annotations

from sqlalchemy import select, update

from app.db import Database
from app.models.platform import Event
from app.models.types import utcnow
from app.models.webhooks import WebhookDelivery, WebhookEndpoint
from app.webhooks.messages import message_body, subscribed

DISPATCH_BATCH = 200


async def dispatch_events(database: Database, *, max_attempts: int) -> int:
    """Turn undispatched events into deliveries, each with ``max_attempts`` attempts;
    returns how many events it took."""
    # A read first, so idle rounds never take SQLite's write lock.
    async with database.session(write=False) as session:
        waiting = await session.scalar(
            select(Event.seq).where(Event.dispatched_at.is_(None)).limit(1)
        )
    if waiting is None:
        return 0
    async with database.session() as session, session.begin():
        batch = (
            await session.scalars(
                select(Event)
                .where(Event.dispatched_at.is_(None))
                .order_by(Event.seq)
                .limit(DISPATCH_BATCH)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not batch:
            return 0
        endpoints = (
            await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.is_active))
        ).all()
        now = utcnow()
        for event in batch:
            body: str | None = None
            for endpoint in endpoints:
                if not subscribed(endpoint.events, event.type):
                    continue
                body = body or message_body(event.type, event.occurred_at, event.data)
                session.add(
                    WebhookDelivery(
                        endpoint_id=endpoint.id,
                        message_id=event.id,
                        event_id=event.id,
                        event_type=event.type,
                        payload=body,
                        max_attempts=max_attempts,
                        next_attempt_at=now,
                    )
                )
        await session.execute(
            update(Event)
            .where(Event.seq.in_([event.seq for event in batch]))
            .values(dispatched_at=now)
        )
    return len(batch)
