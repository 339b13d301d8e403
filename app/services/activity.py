"""Reading what happened: the event feed and the audit log, each scoped like its records."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest
from app.models.platform import AuditEntry, Event
from app.pagination import paginate
from app.permissions import Actor, scope_filter

AUDIT_SORTS = {"at": AuditEntry.at}


def _feed_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"e{seq}".encode()).decode().rstrip("=")


def _feed_position(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("e"):
            raise ValueError(raw)
        return int(raw[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("The cursor is malformed; use a next_cursor from this feed.") from exc


async def read_feed(
    session: AsyncSession, actor: Actor, *, after: str | None, types: Sequence[str], limit: int
) -> tuple[list[Event], str | None]:
    """Events in the order they were recorded, after ``after``. The returned cursor is where
    to read on: it is given even on the last page, so a poller can wait for newer events."""
    stmt = select(Event).where(scope_filter(actor, Event.owner_id, Event.region_id))
    position = _feed_position(after) if after else 0
    stmt = stmt.where(Event.seq > position)
    if types:
        stmt = stmt.where(Event.type.in_(types))
    rows = list((await session.scalars(stmt.order_by(Event.seq).limit(limit))).all())
    last = rows[-1].seq if rows else position
    return rows, (_feed_cursor(last) if last else after)


async def read_audit_log(
    session: AsyncSession,
    actor: Actor,
    *,
    entity_type: str | None,
    entity_id: uuid.UUID | None,
    actor_id: uuid.UUID | None,
    from_: datetime | None,
    to: datetime | None,
    sort: str,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[AuditEntry], str | None]:
    visible = true() if actor.is_director else AuditEntry.region_id == actor.region_id
    stmt: Select[Any] = select(AuditEntry).where(visible)
    if entity_type:
        stmt = stmt.where(AuditEntry.entity_type == entity_type)
    if entity_id:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    if actor_id:
        stmt = stmt.where(AuditEntry.actor_id == actor_id)
    if from_:
        stmt = stmt.where(AuditEntry.at >= from_)
    if to:
        stmt = stmt.where(AuditEntry.at < to)
    return await paginate(
        session,
        stmt,
        sort=sort,
        sortable=AUDIT_SORTS,
        id_column=AuditEntry.id,
        cursor=cursor,
        limit=limit,
    )
