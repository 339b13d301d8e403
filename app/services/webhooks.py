"""Webhook endpoints (director only), their secrets, and the delivery log."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import HttpUrl
from sqlalchemy import Select, delete, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.config import get_settings
from app.errors import Conflict, NotFound, ValidationFailed
from app.models.types import utcnow
from app.models.webhooks import (
    WebhookAttempt,
    WebhookAttemptRead,
    WebhookCreate,
    WebhookDelivery,
    WebhookDeliveryRead,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookRead,
    WebhookSecret,
    WebhookUpdate,
)
from app.pagination import paginate
from app.services.common import ensure_version, get_visible
from app.webhooks.messages import message_body, private_host_reason

ENDPOINT_SORTS = {"created_at": WebhookEndpoint.created_at, "url": WebhookEndpoint.url}
DELIVERY_SORTS = {"created_at": WebhookDelivery.created_at}
TEST_EVENT = "webhook.test"
URL_MAX_LENGTH = 2048


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _checked_url(url: HttpUrl) -> str:
    if len(str(url)) > URL_MAX_LENGTH:
        raise ValidationFailed(
            ["body", "url"], f"The URL is longer than {URL_MAX_LENGTH} characters.", "url_too_long"
        )
    if not get_settings().webhook_allow_private_urls:
        reason = private_host_reason(urlsplit(str(url)).hostname or "")
        if reason:
            raise ValidationFailed(
                ["body", "url"],
                f"This deployment does not send webhooks to that host: {reason}.",
                "url_not_allowed",
            )
    return str(url)


def _events(patterns: Sequence[str]) -> list[str]:
    # ``*`` already covers everything; a sorted set makes equal subscriptions look equal.
    unique = sorted(set(patterns))
    return ["*"] if "*" in unique else unique


# Endpoints ----------------------------------------------------------------------------------


async def list_endpoints(
    session: AsyncSession, *, is_active: bool | None, sort: str, cursor: str | None, limit: int
) -> tuple[Sequence[WebhookEndpoint], str | None]:
    stmt: Select[Any] = select(WebhookEndpoint)
    if is_active is not None:
        stmt = stmt.where(WebhookEndpoint.is_active == is_active)
    return await paginate(
        session,
        stmt,
        sort=sort,
        sortable=ENDPOINT_SORTS,
        id_column=WebhookEndpoint.id,
        cursor=cursor,
        limit=limit,
    )


async def get_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> WebhookEndpoint:
    return await get_visible(
        session, WebhookEndpoint, endpoint_id, true(), name="webhook", for_update=for_update
    )


async def create_endpoint(
    session: AsyncSession, data: WebhookCreate
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its secret, which is never shown again."""
    endpoint = WebhookEndpoint(
        url=_checked_url(data.url),
        events=_events(data.events),
        description=data.description,
        is_active=data.is_active,
    )
    session.add(endpoint)
    await session.flush()
    secret = new_secret()
    session.add(WebhookSecret(endpoint_id=endpoint.id, secret=secret))
    events.record(session, "webhook.created", endpoint, WebhookRead.model_validate(endpoint))
    await session.flush()
    return endpoint, secret


async def update_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, data: WebhookUpdate, expected: int | None
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, endpoint_id, for_update=True)
    ensure_version(endpoint, expected)
    sent = data.model_dump(exclude_unset=True)
    for field in ("url", "events", "is_active"):
        if field in sent and sent[field] is None:
            raise ValidationFailed(["body", field], f"{field} may not be null.")
    if data.url is not None:
        endpoint.url = _checked_url(data.url)
    if data.events is not None:
        endpoint.events = _events(data.events)
    if "description" in sent:
        endpoint.description = data.description
    if data.is_active is not None:
        if data.is_active and not endpoint.is_active:
            # Switched back on by a person: the old failure streak no longer counts.
            endpoint.failing_since = None
            endpoint.disabled_reason = None
        endpoint.is_active = data.is_active
    await session.flush()
    events.record(session, "webhook.updated", endpoint, WebhookRead.model_validate(endpoint))
    return endpoint


async def delete_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, expected: int | None
) -> None:
    """Delete the endpoint with its secrets and delivery log; nothing more is sent to it."""
    endpoint = await get_endpoint(session, endpoint_id, for_update=True)
    ensure_version(endpoint, expected)
    events.record(
        session, "webhook.deleted", endpoint, {"id": str(endpoint.id), "url": endpoint.url}
    )
    # Secrets, deliveries and attempts go with it (ON DELETE CASCADE).
    await session.delete(endpoint)
    await session.flush()


async def rotate_secret(
    session: AsyncSession, endpoint_id: uuid.UUID, overlap_seconds: int
) -> tuple[WebhookEndpoint, str, datetime]:
    """A new secret; the current ones keep signing for ``overlap_seconds`` (at most)."""
    endpoint = await get_endpoint(session, endpoint_id, for_update=True)
    now = utcnow()
    until = now + timedelta(seconds=overlap_seconds)
    await session.execute(
        delete(WebhookSecret).where(
            WebhookSecret.endpoint_id == endpoint.id, WebhookSecret.expires_at <= now
        )
    )
    await session.execute(
        update(WebhookSecret)
        .where(
            WebhookSecret.endpoint_id == endpoint.id,
            or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > until),
        )
        .values(expires_at=until)
    )
    secret = new_secret()
    session.add(WebhookSecret(endpoint_id=endpoint.id, secret=secret, created_at=now))
    events.record(
        session,
        "webhook.secret_rotated",
        endpoint,
        {"id": str(endpoint.id), "previous_secret_expires_at": until.isoformat()},
    )
    await session.flush()
    return endpoint, secret, until


# Deliveries ---------------------------------------------------------------------------------


async def send_test(session: AsyncSession, endpoint_id: uuid.UUID) -> WebhookDeliveryRead:
    """Queue a ``webhook.test`` message to this endpoint alone; it is tried once."""
    endpoint = await get_endpoint(session, endpoint_id)
    if not endpoint.is_active:
        raise Conflict("The endpoint is inactive; turn it on first.", reason="endpoint_inactive")
    now = utcnow()
    message_id = uuid.uuid4()
    data = {"webhook_id": str(endpoint.id), "message": "A test message from Salesdesk."}
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id,
        message_id=message_id,
        event_type=TEST_EVENT,
        payload=message_body(TEST_EVENT, now, data),
        max_attempts=1,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    await session.flush()
    return _delivery_read(delivery, [])


def _delivery_read(
    delivery: WebhookDelivery, attempts: Sequence[WebhookAttempt]
) -> WebhookDeliveryRead:
    return WebhookDeliveryRead(
        id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        message_id=delivery.message_id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        status=WebhookDeliveryStatus(delivery.status),
        attempt_count=delivery.attempts,
        max_attempts=delivery.max_attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_attempt_at=delivery.last_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
        attempts=[WebhookAttemptRead.model_validate(a) for a in attempts],
    )


async def _with_attempts(
    session: AsyncSession, deliveries: Sequence[WebhookDelivery]
) -> list[WebhookDeliveryRead]:
    by_delivery: dict[uuid.UUID, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(by_delivery)))
            .order_by(WebhookAttempt.number)
        )
        for attempt in rows:
            by_delivery[attempt.delivery_id].append(attempt)
    return [_delivery_read(d, by_delivery[d.id]) for d in deliveries]


async def list_deliveries(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    status: WebhookDeliveryStatus | None,
    event_type: str | None,
    sort: str,
    cursor: str | None,
    limit: int,
) -> tuple[list[WebhookDeliveryRead], str | None]:
    endpoint = await get_endpoint(session, endpoint_id)
    stmt: Select[Any] = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if event_type is not None:
        stmt = stmt.where(WebhookDelivery.event_type == event_type)
    rows, next_cursor = await paginate(
        session,
        stmt,
        sort=sort,
        sortable=DELIVERY_SORTS,
        id_column=WebhookDelivery.id,
        cursor=cursor,
        limit=limit,
    )
    return await _with_attempts(session, rows), next_cursor


async def retry_delivery(
    session: AsyncSession, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDeliveryRead:
    """Send the same message (same ``webhook-id``, same body) once more, now.

    A pending delivery keeps its remaining automatic retries; a finished one gets one attempt.
    """
    endpoint = await get_endpoint(session, endpoint_id)
    delivery = (
        await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint.id)
            .with_for_update()
        )
    ).first()
    if delivery is None:
        raise NotFound(f"No delivery with id {delivery_id} for this webhook.")
    if not endpoint.is_active:
        raise Conflict("The endpoint is inactive; turn it on first.", reason="endpoint_inactive")
    now = utcnow()
    in_flight = (
        await session.scalars(
            select(WebhookAttempt.id).where(
                WebhookAttempt.delivery_id == delivery.id, WebhookAttempt.finished_at.is_(None)
            )
        )
    ).first()
    if in_flight is not None and delivery.next_attempt_at and delivery.next_attempt_at > now:
        raise Conflict(
            "An attempt of this delivery is being made right now.", reason="delivery_in_progress"
        )
    if delivery.status != WebhookDeliveryStatus.PENDING:
        delivery.status = WebhookDeliveryStatus.PENDING
        delivery.max_attempts = delivery.attempts + 1
    delivery.next_attempt_at = now
    await session.flush()
    return (await _with_attempts(session, [delivery]))[0]
