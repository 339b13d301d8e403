"""The event feed and the audit log."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Query

from app.deps import SessionDep, require
from app.models.platform import AuditEntryRead, EventPage, EventRead
from app.models.types import Timestamp
from app.pagination import Page
from app.permissions import Actor, Permission
from app.routers.common import Cursor, Limit, api_router
from app.services import activity

EVENT_TYPE_PATTERN = r"^[a-z_]+\.[a-z_]+$"

events = api_router("/events", "events")
audit = api_router("/audit-log", "audit")


class AuditPage(Page[AuditEntryRead]):
    pass


@events.get("", summary="Read the event feed, oldest first, after a cursor")
async def events_list(
    session: SessionDep,
    actor: Annotated[Actor, Depends(require(Permission.EVENTS_READ))],
    after: Cursor = None,
    type: Annotated[
        list[Annotated[str, Query(pattern=EVENT_TYPE_PATTERN, max_length=64)]] | None,
        Query(max_length=20, description="Only these types, e.g. customer.created."),
    ] = None,
    limit: Limit = 100,
) -> EventPage:
    rows, next_cursor = await activity.read_feed(
        session, actor, after=after, types=type or [], limit=limit
    )
    return EventPage(items=[EventRead.model_validate(e) for e in rows], next_cursor=next_cursor)


@audit.get("", summary="Who changed what, when (director; managers: their region)")
async def audit_log_list(
    session: SessionDep,
    actor: Annotated[Actor, Depends(require(Permission.AUDIT_READ))],
    entity_type: Annotated[str | None, Query(max_length=64)] = None,
    entity_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    from_: Annotated[
        Timestamp | None, Query(alias="from", description="Entries at or after this time.")
    ] = None,
    to: Annotated[Timestamp | None, Query(description="Entries before this time.")] = None,
    sort: Literal["at", "-at"] = "-at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> AuditPage:
    rows, next_cursor = await activity.read_audit_log(
        session,
        actor,
        entity_type=entity_type,
        entity_id=entity_id,
        actor_id=actor_id,
        from_=from_,
        to=to,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )
    return AuditPage(
        items=[AuditEntryRead.model_validate(a) for a in rows], next_cursor=next_cursor
    )
