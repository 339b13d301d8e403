"""The outbox. ``record`` adds an event inside the caller's transaction, so an event exists
exactly when its change does; delivery (webhooks, the feed) reads committed rows only.
Events are written as ``app.pending_rows``: no ORM object is made for them."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app import pending_rows
from app.models.platform import Event
from app.models.types import utcnow

_TABLE = Event.__table__  # type: ignore[attr-defined]


def record(
    session: AsyncSession,
    type_: str,
    subject: Any,
    data: BaseModel | dict[str, Any],
    *,
    actor_id: uuid.UUID | None = None,
    scope: Any = None,
) -> None:
    """Add event ``type_`` about ``subject`` (a table row), scoped like that row.

    ``data`` is what subscribers receive, usually the resource as the API shows it.
    ``scope`` is the row whose owner and region decide who may read the event, when that
    is not ``subject`` itself (a contact is scoped by its customer).
    """
    scope = subject if scope is None else scope
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    pending_rows.add(
        session,
        _TABLE,
        {
            "id": uuid.uuid4(),
            "type": type_,
            "occurred_at": utcnow(),
            "actor_id": actor_id if actor_id is not None else session.info.get("actor_id"),
            "entity_type": type_.split(".", 1)[0],
            "entity_id": getattr(subject, "id", None),
            "owner_id": getattr(scope, "owner_id", None),
            "region_id": getattr(scope, "region_id", None),
            "data": payload,
            "dispatched_at": None,
        },
    )
