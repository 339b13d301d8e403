"""Hot reads run on the driver connection: a SELECT built once, compiled once per dialect.

Reading one customer through the ORM (a session's execute, the compiled-statement cache, the
Result, an instance with its identity map entry and attribute events, then a pydantic model
read from those attributes) cost more CPU than everything else the request did. A ``Read``
does what is left of that work by hand: its statement is compiled once per dialect, its
parameters and columns go through the same bind and result processors the ORM would apply
(UTC timestamps, UUIDs, enums), and it runs on the request's own connection
(``app.db.driver_connection``), inside the request's transaction where there is one.

Only for plain SELECTs of columns; a lost connection is an ``OperationalError`` (503) as it is
on the ORM path. Statements sent this way do not pass SQLAlchemy's cursor events: whatever
needs to see them (the tests counting statements, the benchmarks) adds itself to
``OBSERVERS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError

Processor = Callable[[Any], Any] | None

OBSERVERS: list[Callable[[str, Sequence[Any]], None]] = []
"""Called with the SQL and arguments of every statement a Read sends."""


class DriverConnection(Protocol):
    """The request's connection as ``app.db`` lends it to a Read."""

    dialect: Dialect
    raw: Any  # asyncpg.Connection or aiosqlite.Connection

    def lost(self, error: BaseException) -> None:
        """Called when the driver failed for a connection-level reason (before a 503)."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    binds: tuple[tuple[str, Processor], ...]
    results: tuple[Processor, ...]
    asyncpg: bool


class Read:
    """One SELECT of columns, run with named parameters; rows come back as tuples in the
    order of its columns."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        names = compiled.positiontup or []
        binds = tuple(
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names
        )
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in self.statement.selected_columns
        )
        done = _Compiled(compiled.string, binds, results, dialect.driver == "asyncpg")
        self._compiled[dialect.name] = done
        return done

    async def rows(
        self, connection: DriverConnection, params: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        compiled = self._compiled.get(connection.dialect.name) or self._compile(connection.dialect)
        args = [
            params[name] if process is None else process(params[name])
            for name, process in compiled.binds
        ]
        for observe in OBSERVERS:
            observe(compiled.sql, args)
        try:
            if compiled.asyncpg:
                records: Sequence[Sequence[Any]] = await connection.raw.fetch(compiled.sql, *args)
            else:
                cursor = await connection.raw.execute(compiled.sql, args)
                records = await cursor.fetchall()
                await cursor.close()
        except Exception as exc:
            if _is_operational(exc, connection):
                connection.lost(exc)
                raise OperationalError(compiled.sql, args, exc) from exc
            raise
        results = compiled.results
        return [
            tuple(
                value if process is None else process(value)
                for value, process in zip(record, results, strict=True)
            )
            for record in records
        ]

    async def first(
        self, connection: DriverConnection, params: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        found = await self.rows(connection, params)
        return found[0] if found else None


def _is_operational(error: BaseException, connection: DriverConnection) -> bool:
    """A failure of the database rather than of the statement: what the ORM path answers with
    503 (``app.errors``)."""
    if connection.dialect.name == "sqlite":
        import sqlite3

        return isinstance(error, sqlite3.OperationalError)
    from app.db import connection_lost

    return connection_lost(error)
