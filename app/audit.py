"""The audit log, written by one session hook for every change of every audited table.

Services need not remember to audit: whatever they add, change or delete through the ORM in
a request is logged with the acting user, in the same transaction.

The entries are collected before each flush (while the rows' history says what changed) and
written by one Core insert at the end of that flush, inside its transaction or savepoint.
They are rows no request reads back, so building an ORM object for each and putting it
through the unit of work (about a tenth of a write's CPU) bought nothing.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import event, insert, inspect
from sqlalchemy.orm import Session

from app.models.platform import AuditEntry
from app.models.types import utcnow

# Never copied into the audit log.
_SECRET_COLUMNS = frozenset({"password_hash", "secret", "token_digest"})
# How a changed secret shows in the log: its plain name, never its value or digest.
_SECRET_NAMES = {"password_hash": "credentials", "secret": "secret", "token_digest": "token"}
_NOISE_COLUMNS = frozenset({"version", "updated_at"})
_REDACTED = "[changed]"
# Where a flush's entries wait for its end; set by every flush, so a failed one leaves none.
_PENDING = "audit_entries"
_INSERT = insert(AuditEntry.__table__)  # type: ignore[attr-defined]


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
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        key = attr.key
        if key in _NOISE_COLUMNS:
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


def _entry(session: Session, obj: Any, action: str, before: Any, after: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "at": utcnow(),
        "actor_id": session.info.get("actor_id"),
        "action": action,
        "entity_type": obj.__tablename__,
        "entity_id": obj.id,
        "region_id": getattr(obj, "region_id", None),
        "before": before,
        "after": after,
    }


@event.listens_for(Session, "before_flush")
def _audit_before_flush(session: Session, _context: Any, _instances: Any) -> None:
    entries: list[dict[str, Any]] = []
    for obj in session.new:
        if getattr(obj, "__audited__", False):
            entries.append(_entry(session, obj, "create", None, _snapshot(obj)))
    for obj in session.dirty:
        if getattr(obj, "__audited__", False) and session.is_modified(obj):
            before, after = _changes(obj)
            if after:
                action = "delete" if after.get("deleted_at") else "update"
                entries.append(_entry(session, obj, action, before, after))
    for obj in session.deleted:
        if getattr(obj, "__audited__", False):
            entries.append(_entry(session, obj, "delete", _snapshot(obj), None))
    session.info[_PENDING] = entries


@event.listens_for(Session, "after_flush")
def _audit_after_flush(session: Session, _context: Any) -> None:
    entries = session.info.pop(_PENDING, None)
    if entries:
        session.connection().execute(_INSERT, entries)
