"""Rows a transaction appends and never changes afterwards (audit entries, outbox events,
stage history), written by one Core INSERT a table instead of as ORM objects.

Building a table model and putting it through the unit of work (registered, flushed,
post-fetched) was a tenth to a fifth of a write's CPU for rows no request reads back as
objects. ``add`` queues a row on the session; the rows are written in the transaction
they belong to, with the same fate as an ORM object added at that moment:

- by every flush, after its objects (``Session`` below), also when it has none; so before a
  savepoint begins (SQLAlchemy flushes then), outside it;
- before any statement the session executes, so a query in the same transaction sees them;
- before a commit or a savepoint's release;

and they are dropped when their transaction or savepoint rolls back. Statements run on the
driver connection (``app.reads``) pass these hooks by: ``app.db.driver_connection`` writes
the rows first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, event, insert, orm
from sqlalchemy.orm import ORMExecuteState, SessionTransaction

_PENDING = "pending_rows"


def add(session: Any, table: Table, row: dict[str, Any]) -> None:
    """Queue ``row`` (every column the table needs a value for, defaults included) for
    ``table``, in ``session``'s (sync or async) current transaction or savepoint."""
    pending: dict[Table, list[dict[str, Any]]] = session.info.setdefault(_PENDING, {})
    pending.setdefault(table, []).append(row)


def pending(session: Any) -> bool:
    return bool(session.info.get(_PENDING))


def write(session: orm.Session) -> None:
    """Write what is queued, in the order the tables were first queued, then each table's
    rows in the order they came (an outbox's sequence follows it)."""
    queued: dict[Table, list[dict[str, Any]]] | None = session.info.pop(_PENDING, None)
    if not queued:
        return
    connection = session.connection()
    for table, rows in queued.items():
        connection.execute(insert(table), rows)


class Session(orm.Session):
    """The app's sessions (``app.db``). ``flush()`` writes the queued rows after the objects:
    also when there are no objects to flush, where SQLAlchemy returns at once. Every flush
    goes through here: a commit's, and the one SQLAlchemy makes before a savepoint begins
    (so rows queued before the savepoint are written outside it)."""

    def flush(self, objects: Sequence[Any] | None = None) -> None:
        super().flush(objects)
        if self.info.get(_PENDING):
            write(self)


@event.listens_for(orm.Session, "do_orm_execute")
def _write_before_statement(state: ORMExecuteState) -> None:
    if state.session.info.get(_PENDING):
        write(state.session)


@event.listens_for(orm.Session, "before_commit")
def _write_before_commit(session: orm.Session) -> None:
    # A commit flushes only a session with objects to flush. Fired for a savepoint's
    # release too.
    write(session)


@event.listens_for(orm.Session, "after_soft_rollback")
def _drop_on_rollback(session: orm.Session, _previous: SessionTransaction) -> None:
    # Whatever is still queued was added inside what rolled back (a savepoint's start wrote
    # the rows before it), or in the failed flush that caused the rollback.
    session.info.pop(_PENDING, None)
