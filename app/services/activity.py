"""Reading what happened: the event feed and the audit log, each scoped like its records."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest
from app.models.platform import AuditEntry, Event
from app.models.types import utcnow
from app.pagination import paginate
from app.permissions import Actor, scope_filter

AUDIT_SORTS = {"at": AuditEntry.at}


def _feed_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"e{seq}".encode()).decode().rstrip("=")


# At most 18 ASCII digits: always within the BIGINT of ``seq`` (a larger number would fail in
# the database driver instead of answering 400).
_FEED_CURSOR = re.compile(r"e([0-9]{1,18})")


def _feed_position(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raw = ""
    match = _FEED_CURSOR.fullmatch(raw)
    if match is None:
        raise BadRequest("The cursor is malformed; use a next_cursor from this feed.")
    return int(match.group(1))


# A missing seq younger than this may belong to a transaction still running; older ones are
# taken as rolled back. Request transactions last well under a second.
GAP_GRACE = timedelta(seconds=10)
_HORIZON_SCAN = 10_000


async def _horizon(session: AsyncSession, position: int) -> int | None:
    """The last seq the feed may hand out without skipping one still being written, or None
    when every visible event may go.

    On PostgreSQL a seq is drawn at insert and the row shows at commit, so seq 7 can be
    visible while seq 6 is not yet: a reader moving its cursor past 7 would never see 6.
    The feed therefore stops before the first recent gap, until the gap fills (its
    transaction commits) or ages past ``GAP_GRACE`` (it rolled back). SQLite writers take
    the database lock before drawing a seq, so there seq order is commit order.
    """
    if session.get_bind().dialect.name == "sqlite":
        return None
    cutoff = utcnow() - GAP_GRACE
    settled = await session.scalar(
        select(Event.seq).where(Event.occurred_at < cutoff).order_by(Event.seq.desc()).limit(1)
    )
    previous = max(position, settled or 0)
    young = list(
        (
            await session.scalars(
                select(Event.seq)
                .where(Event.seq > previous)
                .order_by(Event.seq)
                .limit(_HORIZON_SCAN + 1)
            )
        ).all()
    )
    if young and position == 0 and settled is None:
        # A reader starting from nothing has no known predecessor of the first event.
        previous = young[0] - 1
    for seq in young[:_HORIZON_SCAN]:
        if seq != previous + 1:
            return previous
        previous = seq
    return previous if len(young) > _HORIZON_SCAN else None


async def read_feed(
    session: AsyncSession, actor: Actor, *, after: str | None, types: Sequence[str], limit: int
) -> tuple[list[Event], str]:
    """Events in the order they were recorded, after ``after``. The returned cursor is where
    to read on: it is given even on the last page, so a poller can wait for newer events.
    An event committed after a later-numbered one is not passed over (see ``_horizon``)."""
    stmt = select(Event).where(scope_filter(actor, Event.owner_id, Event.region_id))
    position = _feed_position(after) if after else 0
    stmt = stmt.where(Event.seq > position)
    horizon = await _horizon(session, position)
    if horizon is not None:
        stmt = stmt.where(Event.seq <= horizon)
    if types:
        stmt = stmt.where(Event.type.in_(types))
    rows = list((await session.scalars(stmt.order_by(Event.seq).limit(limit))).all())
    last = rows[-1].seq if rows else position
    # Even an empty feed answers a cursor, so a poller never has to special-case null.
    return rows, _feed_cursor(last)


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
    # A manager without a region sees nothing (``== None`` would match every regionless row).
    if actor.is_director:
        visible: ColumnElement[bool] = true()
    elif actor.is_manager and actor.region_id is not None:
        visible = AuditEntry.region_id == actor.region_id
    else:
        visible = false()
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
