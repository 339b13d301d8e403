"""Webhook endpoints and their delivery log (director)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Body, Depends, Query, Response

from app.deps import IfMatchDep, SessionDep, require
from app.models.webhooks import (
    WebhookCreate,
    WebhookDeliveryRead,
    WebhookDeliveryStatus,
    WebhookRead,
    WebhookRotate,
    WebhookRotated,
    WebhookUpdate,
    WebhookWithSecret,
)
from app.pagination import Page
from app.permissions import Actor, Permission
from app.routers.common import (
    Cursor,
    Limit,
    api_router,
    created,
    created_with_headers,
    ok_with_etag,
    with_etag,
)
from app.services import webhooks as service

router = api_router("/webhooks", "webhooks")

Manager = Annotated[Actor, Depends(require(Permission.WEBHOOKS_MANAGE))]


class WebhookPage(Page[WebhookRead]):
    pass


class WebhookDeliveryPage(Page[WebhookDeliveryRead]):
    pass


@router.get("", summary="List webhook endpoints")
async def webhooks_list(
    session: SessionDep,
    _: Manager,
    is_active: bool | None = None,
    sort: Literal["created_at", "-created_at", "url", "-url"] = "-created_at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> WebhookPage:
    rows, next_cursor = await service.list_endpoints(
        session, is_active=is_active, sort=sort, cursor=cursor, limit=limit
    )
    return WebhookPage(items=[WebhookRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    summary="Add a webhook endpoint; the answer holds its secret, shown this once",
    responses=created_with_headers(),
)
async def webhooks_create(
    session: SessionDep, _: Manager, body: WebhookCreate, response: Response
) -> WebhookWithSecret:
    endpoint, secret = await service.create_endpoint(session, body)
    read = WebhookRead.model_validate(endpoint)
    created(response, f"/api/v1/webhooks/{endpoint.id}", read.version, read.unversioned())
    return WebhookWithSecret(**read.model_dump(), secret=secret)


@router.get("/{webhook_id}", summary="Get a webhook endpoint", responses=ok_with_etag())
async def webhooks_get(
    session: SessionDep, _: Manager, webhook_id: uuid.UUID, response: Response
) -> WebhookRead:
    read = WebhookRead.model_validate(await service.get_endpoint(session, webhook_id))
    with_etag(response, read.version, read.unversioned())
    return read


@router.patch("/{webhook_id}", summary="Change a webhook endpoint", responses=ok_with_etag())
async def webhooks_update(
    session: SessionDep,
    _: Manager,
    webhook_id: uuid.UUID,
    body: WebhookUpdate,
    expected: IfMatchDep,
    response: Response,
) -> WebhookRead:
    read = WebhookRead.model_validate(
        await service.update_endpoint(session, webhook_id, body, expected)
    )
    with_etag(response, read.version, read.unversioned())
    return read


@router.delete(
    "/{webhook_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a webhook endpoint with its delivery log",
)
async def webhooks_delete(
    session: SessionDep, _: Manager, webhook_id: uuid.UUID, expected: IfMatchDep
) -> None:
    await service.delete_endpoint(session, webhook_id, expected)


@router.post(
    "/{webhook_id}/rotate-secret",
    summary="Replace the signing secret; the old one keeps signing during the overlap",
    responses=ok_with_etag(),
)
async def webhooks_rotate_secret(
    session: SessionDep,
    _: Manager,
    webhook_id: uuid.UUID,
    response: Response,
    body: Annotated[WebhookRotate | None, Body()] = None,
) -> WebhookRotated:
    overlap = (body or WebhookRotate()).overlap_seconds
    endpoint, secret, until = await service.rotate_secret(session, webhook_id, overlap)
    read = WebhookRead.model_validate(endpoint)
    with_etag(response, read.version, read.unversioned())
    return WebhookRotated(**read.model_dump(), secret=secret, previous_secret_expires_at=until)


@router.post(
    "/{webhook_id}/test",
    status_code=202,
    summary="Queue a webhook.test message to this endpoint (tried once)",
)
async def webhooks_test(
    session: SessionDep, _: Manager, webhook_id: uuid.UUID
) -> WebhookDeliveryRead:
    return await service.send_test(session, webhook_id)


@router.get("/{webhook_id}/deliveries", summary="The delivery log: every message and every attempt")
async def webhooks_deliveries_list(
    session: SessionDep,
    _: Manager,
    webhook_id: uuid.UUID,
    status: WebhookDeliveryStatus | None = None,
    event_type: Annotated[str | None, Query(max_length=64)] = None,
    sort: Literal["created_at", "-created_at"] = "-created_at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> WebhookDeliveryPage:
    items, next_cursor = await service.list_deliveries(
        session,
        webhook_id,
        status=status,
        event_type=event_type,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )
    return WebhookDeliveryPage(items=items, next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    status_code=202,
    summary="Send a delivery again now (same webhook-id and body)",
)
async def webhooks_deliveries_retry(
    session: SessionDep, _: Manager, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDeliveryRead:
    return await service.retry_delivery(session, webhook_id, delivery_id)
