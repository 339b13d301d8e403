"""The audit log, written by one session hook for every change of every audited table.

Services need not remember to audit: whatever they add, change or delete through the ORM in
a request is logged with the acting user, in the same transaction.

The entries are collected before each flush (while the rows' history says what changed) and
written at the end of that flush, inside its transaction or savepoint (``app.pending_rows``).
"""

from __future__ import annotations

import functools
import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from app import pending_rows
from app.models.platform import AuditEntry
from app.models.types import utcnow

# Never copied into the audit log.
_SECRET_COLUMNS = frozenset({"password_hash", "secret", "token_digest"})
# How a changed secret shows in the log: its plain name, never its value or digest.
_SECRET_NAMES = {"password_hash": "credentials", "secret": "secret", "token_digest": "token"}
_NOISE_COLUMNS = frozenset({"version", "updated_at"})
_REDACTED = "[changed]"
_TABLE = AuditEntry.__table__  # type: ignore[attr-defined]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _columns(obj: Any) -> list[str]:
    return [c.key for c in inspect(obj).mapper.column_attrs if c.key not in _SECRET_COLUMNS]


def _snapshot(obj: Any) -> dict[str, Any]:
    return {key: _jsonable(getattr(obj, key)) for key in _columns(obj)}


def _changes(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    state = inspect(obj)
    columns = state.mapper.column_attrs
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    # Only attributes set since the row was loaded have a committed value kept: the others
    # have no history to ask for (a customer has twenty-odd columns; a change sets two).
    for key in list(state.committed_state):
        if key in _NOISE_COLUMNS or key not in columns:
            continue
        history = state.attrs[key].history
        if not history.has_changes():
            continue
        old = history.deleted[0] if history.deleted else None
        new = history.added[0] if history.added else None
        if old == new:
            continue
        if key in _SECRET_COLUMNS:
            # That a secret changed is worth knowing; its value never is.
            name = _SECRET_NAMES[key]
            before[name], after[name] = _REDACTED, _REDACTED
            continue
        before[key] = _jsonable(old)
        after[key] = _jsonable(new)
    return before, after


def _region_of(session: Any, obj: Any) -> uuid.UUID | None:
    """The region an entry about ``obj`` belongs to (see ``RecordBase.__region_column__``).
    A parent is nearly always in the session already (the service read it to check the
    caller's scope), so this seldom costs a query."""
    model = type(obj)
    parent_key = getattr(model, "__region_parent__", None)
    if parent_key is None:
        return getattr(obj, getattr(model, "__region_column__", "region_id"), None)
    parent_id = getattr(obj, parent_key)
    if parent_id is None:
        return None
    sync_session = getattr(session, "sync_session", session)
    parent = sync_session.get(_referenced_model(model, parent_key), parent_id)
    return None if parent is None else _region_of(session, parent)


@functools.cache
def _referenced_model(model: type, key: str) -> type:
    """The mapped class a foreign key column of ``model`` refers to."""
    mapper = inspect(model)
    [foreign_key] = mapper.columns[key].foreign_keys
    for candidate in mapper.registry.mappers:
        if candidate.local_table is foreign_key.column.table:
            return candidate.class_
    raise LookupError(f"{model.__name__}.{key} refers to no mapped table")


def record(session: Any, obj: Any, action: str, before: Any, after: Any) -> None:
    """Log ``action`` on ``obj`` (a row of an audited table) by the session's actor, in the
    session's transaction: by the hook below for what goes through the ORM, and by a
    service for a change the ORM does not see (a Core UPDATE)."""
    pending_rows.add(
        session,
        _TABLE,
        {
            "id": uuid.uuid4(),
            "at": utcnow(),
            "actor_id": session.info.get("actor_id"),
            "action": action,
            "entity_type": obj.__tablename__,
            "entity_id": obj.id,
            "region_id": _region_of(session, obj),
            "before": before,
            "after": after,
        },
    )


@event.listens_for(Session, "before_flush")
def _audit_before_flush(session: Session, _context: Any, _instances: Any) -> None:
    for obj in session.new:
        if getattr(obj, "__audited__", False):
            record(session, obj, "create", None, _snapshot(obj))
    for obj in session.dirty:
        if getattr(obj, "__audited__", False):
            before, after = _changes(obj)
            if after:
                action = "delete" if after.get("deleted_at") else "update"
                record(session, obj, action, before, after)
    for obj in session.deleted:
        if getattr(obj, "__audited__", False):
            record(session, obj, "delete", _snapshot(obj), None)
