"""Rows a transaction appends and never changes afterwards (audit entries, outbox events,
stage history), written by one Core INSERT a table instead of as ORM objects.

Building a table model and putting it through the unit of work (registered, flushed,
post-fetched) was a tenth to a fifth of a write's CPU for rows no request reads back as
objects. ``add`` queues a row on the session; the rows are written in the transaction
they belong to, with the same fate as an ORM object added at that moment:

- before any statement the session executes, so a query in the same transaction sees them;
- before a savepoint begins (``Session.begin_nested`` flushes, then writes), outside it;
- before a commit or a savepoint's release, after its flush (whose audit entries they
  include);

and they are dropped when their transaction or savepoint rolls back. A service's own
``flush()`` leaves them queued: most writes flush, then record their event, and the rows
of the whole request then go together at the commit. Statements run on the driver
connection (``app.reads``) pass these hooks by: ``app.db.driver_connection`` writes the
rows first.

On PostgreSQL the rows of several tables go in one statement (each table's INSERT but the
last in a ``WITH`` clause): a stage move queues its history entry, audit entry and event,
written in one round trip instead of three (bench/README.md, the tenth pass). None of
these tables refers to another, so the order between them is immaterial; within a table
the rows keep their order (an outbox's sequence follows it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Dialect, Table, TextClause, bindparam, event, insert, orm, text
from sqlalchemy.orm import ORMExecuteState, SessionTransaction

_PENDING = "pending_rows"
# What one batch holds: for each table, its row count and the columns its rows give.
_Shape = tuple[tuple[Table, int, tuple[str, ...]], ...]
# The statement of each shape met and its parameters' names in the order of the batch's
# values, built once (a request queues one to three rows a table, so a process meets a few
# dozen shapes); the bound is a safeguard.
_STATEMENTS: dict[_Shape, tuple[TextClause, tuple[str, ...]]] = {}
_MAX_STATEMENTS = 512
# A batch with more values than this (a bulk change) goes one executemany a table instead:
# PostgreSQL takes at most 32,767 parameters a statement, and such a statement's text is
# not worth keeping.
_MAX_VALUES = 1000


def add(session: Any, table: Table, row: dict[str, Any]) -> None:
    """Queue ``row`` (every column the table needs a value for, defaults included) for
    ``table``, in ``session``'s (sync or async) current transaction or savepoint."""
    pending: dict[Table, list[dict[str, Any]]] = session.info.setdefault(_PENDING, {})
    pending.setdefault(table, []).append(row)


def pending(session: Any) -> bool:
    return bool(session.info.get(_PENDING))


def write(session: orm.Session) -> None:
    """Write what is queued: each table's rows in the order they came (an outbox's sequence
    follows it); on PostgreSQL, the tables of a small batch in one statement."""
    queued: dict[Table, list[dict[str, Any]]] | None = session.info.pop(_PENDING, None)
    if not queued:
        return
    connection = session.connection()
    if len(queued) > 1 and connection.dialect.name == "postgresql":
        shape = _shape(queued)
        if shape is not None:
            statement, names = _statement(shape, connection.dialect)
            values = (value for rows in queued.values() for row in rows for value in row.values())
            connection.execute(statement, dict(zip(names, values, strict=True)))
            return
    for table, rows in queued.items():
        connection.execute(insert(table), rows)


def _shape(queued: dict[Table, list[dict[str, Any]]]) -> _Shape | None:
    """The batch's shape, or None when it is too large for one statement or a table's rows
    do not all give the same columns."""
    shape, values = [], 0
    for table, rows in queued.items():
        columns = tuple(rows[0])
        values += len(rows) * len(columns)
        if values > _MAX_VALUES or any(tuple(row) != columns for row in rows):
            return None
        shape.append((table, len(rows), columns))
    return tuple(shape)


def _statement(shape: _Shape, dialect: Dialect) -> tuple[TextClause, tuple[str, ...]]:
    """``WITH pending_0 AS (INSERT …), … INSERT …``: every table's rows, one statement, and
    the names of its parameters, table by table, row by row, column by column.

    Written as text because SQLAlchemy compiles a multi-row ``insert().values()`` again at
    every execution (it has no cache key), which cost more than the round trips saved; a
    text statement is compiled once a shape. Its parameters carry the columns' types, so
    values are bound as by an ``insert()``."""
    known = _STATEMENTS.get(shape)
    if known is not None:
        return known
    quote = dialect.identifier_preparer
    inserts, parameters = [], []
    for t, (table, count, columns) in enumerate(shape):
        rows = []
        for r in range(count):
            row = [bindparam(f"p{t}_{r}_{c}", type_=table.c[c].type) for c in columns]
            rows.append("(" + ", ".join(f":{p.key}" for p in row) + ")")
            parameters += row
        names = ", ".join(quote.quote(c) for c in columns)
        inserts.append(
            f"INSERT INTO {quote.format_table(table)} ({names}) VALUES {', '.join(rows)}"
        )
    *first, last = inserts
    ctes = ", ".join(f"pending_{t} AS ({sql})" for t, sql in enumerate(first))
    statement = text(f"WITH {ctes} {last}").bindparams(*parameters)
    if len(_STATEMENTS) >= _MAX_STATEMENTS:
        _STATEMENTS.clear()
    known = _STATEMENTS[shape] = (statement, tuple(p.key for p in parameters))
    return known


class Session(orm.Session):
    """The app's sessions (``app.db``)."""

    def begin_nested(self) -> SessionTransaction:
        # What is queued so far, and the audit entries of the flush SQLAlchemy makes before
        # a savepoint, belong outside the savepoint: flush and write them first.
        self.flush()
        write(self)
        return super().begin_nested()


@event.listens_for(orm.Session, "do_orm_execute")
def _write_before_statement(state: ORMExecuteState) -> None:
    if state.session.info.get(_PENDING):
        write(state.session)


@event.listens_for(orm.Session, "before_commit")
def _write_before_commit(session: orm.Session) -> None:
    # Fired for a savepoint's release too, before its flush: flush here, so that the audit
    # entries that flush queues are written with the rest.
    session.flush()
    write(session)


@event.listens_for(orm.Session, "after_soft_rollback")
def _drop_on_rollback(session: orm.Session, _previous: SessionTransaction) -> None:
    # Whatever is still queued was added inside what rolled back (a savepoint's start wrote
    # the rows before it), or in the failed flush that caused the rollback.
    session.info.pop(_PENDING, None)
