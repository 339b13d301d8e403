"""Hot reads run on the driver connection: a SELECT built once, compiled once per dialect.

Reading one customer through the ORM (a session's execute, the compiled-statement cache, the
Result, an instance with its identity map entry and attribute events, then a pydantic model
read from those attributes) cost more CPU than everything else the request did. A ``Read``
does what is left of that work by hand: its statement is compiled once per dialect, its
parameters and columns go through the same bind and result processors the ORM would apply
(UTC timestamps, UUIDs, enums), and it runs on the request's own connection
(``app.db.driver_connection``), inside the request's transaction where there is one.

Only for SELECTs of columns (on PostgreSQL one may carry an UPDATE in its WITH: a workflow's
move, ``app.workflow``). A statement with an expanding IN list (``bindparam(...,
expanding=True)``) has its SQL rendered for each call's list by SQLAlchemy's own post-compile
step; values bound in the statement itself (``case(..., else_=0)``) are sent as compiled. A
lost connection is an ``OperationalError`` (503) as it is on the ORM path. Statements sent
this way do not pass SQLAlchemy's cursor events: whatever needs to see them (the tests
counting statements, the benchmarks) adds itself to ``OBSERVERS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import Select
from sqlalchemy.engine import Dialect, processors
from sqlalchemy.exc import InvalidRequestError, OperationalError
from sqlalchemy.sql import sqltypes
from sqlalchemy.sql.compiler import ExpandedState, SQLCompiler
from sqlalchemy.types import TypeDecorator

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
    # The columns that have a result processor, by position (often fewer than half).
    results: tuple[tuple[int, Callable[[Any], Any]], ...]
    # The values bound in the statement itself, by name: sent unless the call gives its own.
    literals: Mapping[str, Any]
    # Set when the SQL depends on the lengths of IN lists: SQLAlchemy renders it, and fills
    # in the literals, for each call's parameters...
    expanding: SQLCompiler | None
    # ...once for each combination of the lists' lengths, kept here by those lengths, when
    # the lengths are all the SQL depends on (no value rendered into it): the lists' names.
    lists: tuple[str, ...] | None
    expansions: dict[tuple[int, ...], _Expansion]


@dataclass(frozen=True, slots=True)
class _Expansion:
    """An expanding statement's SQL for given lengths of its lists, and where each of its
    arguments comes from: a parameter, the index in its list (None for a single value), and
    the bind processor."""

    sql: str
    args: tuple[tuple[str, int | None, Processor], ...]

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        args = []
        for name, index, process in self.args:
            value = values[name] if index is None else values[name][index]
            args.append(value if process is None else process(value))
        return args


class Read:
    """One SELECT of columns, run with named parameters; rows come back as tuples in the
    order of its columns."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        names = compiled.positiontup or []
        binds = tuple(
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names
        )
        processors = (
            _result_processor(column.type, dialect) for column in self.statement.selected_columns
        )
        results = tuple(
            (index, process) for index, process in enumerate(processors) if process is not None
        )
        literals = {
            name: bind.effective_value
            for name, bind in compiled.binds.items()
            if not bind.required and bind.callable is None
        }
        late = compiled.post_compile_params
        lists = None
        if late and all(bind.expanding and not bind.literal_execute for bind in late):
            lists = tuple(sorted(compiled.bind_names[bind] for bind in late))
        done = _Compiled(
            compiled.string,
            binds,
            results,
            literals,
            compiled if late else None,
            lists,
            {},
        )
        self._compiled[dialect.name] = done
        return done

    def sql_and_args(self, dialect: Dialect, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """The SQL to send with these parameters, and its arguments (bind processors applied)."""
        compiled = self._compiled.get(dialect.name) or self._compile(dialect)
        if compiled.expanding is not None:
            return _expanded(compiled, params)
        literals = compiled.literals
        args = []
        for name, process in compiled.binds:
            value = params[name] if name in params else literals[name]
            args.append(value if process is None else process(value))
        return compiled.sql, args

    def processed(
        self, dialect: Dialect, records: Sequence[Sequence[Any]]
    ) -> list[tuple[Any, ...]]:
        """The driver's records as rows, each column through its result processor."""
        results = self._compiled[dialect.name].results
        if not results:
            return [tuple(record) for record in records]
        rows = []
        for record in records:
            row = list(record)
            for index, process in results:
                row[index] = process(row[index])
            rows.append(tuple(row))
        return rows

    async def rows(
        self, connection: DriverConnection, params: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        dialect = connection.dialect
        sql, args = self.sql_and_args(dialect, params)
        return self.processed(dialect, await _fetch(connection, sql, args))

    async def first(
        self, connection: DriverConnection, params: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        found = await self.rows(connection, params)
        return found[0] if found else None


async def _fetch(
    connection: DriverConnection, sql: str, args: Sequence[Any]
) -> Sequence[Sequence[Any]]:
    for observe in OBSERVERS:
        observe(sql, args)
    try:
        if connection.dialect.driver == "asyncpg":
            return await connection.raw.fetch(sql, *args)  # type: ignore[no-any-return]
        cursor = await connection.raw.execute(sql, args)
        records: Sequence[Sequence[Any]] = await cursor.fetchall()
        await cursor.close()
        return records
    except Exception as exc:
        if _is_operational(exc, connection):
            connection.lost(exc)
            raise OperationalError(sql, args, exc) from exc
        raise


async def rows_together(
    connection: DriverConnection, reads: Sequence[tuple[Read, Mapping[str, Any]]]
) -> list[list[tuple[Any, ...]]]:
    """The rows of each of several reads, in one round trip on PostgreSQL.

    A report's figures are a handful of small aggregate statements, and each round trip cost
    the app more CPU than PostgreSQL spent answering it (a turn of the event loop, the
    protocol's messages, a wait): sent as one SELECT, each statement's rows come back as one
    array of records (``ARRAY(SELECT ROW(r.*) FROM (<statement>) AS r)``), which asyncpg
    decodes to tuples of the columns' own types. Each statement keeps its own arguments: its
    ``$n`` are renumbered after the ones before it. SQLite, in process, runs them in turn, as
    a single read runs as it is.
    """
    dialect = connection.dialect
    if dialect.driver != "asyncpg" or len(reads) < 2:
        return [await read.rows(connection, params) for read, params in reads]
    statements = []
    args: list[Any] = []
    for read, params in reads:
        sql, read_args = read.sql_and_args(dialect, params)
        statements.append(sql)
        args.extend(read_args)
    sql, arg_count = _together(tuple(statements))
    if arg_count != len(args):
        raise ValueError(f"The statements take {arg_count} arguments; {len(args)} were given.")
    (record,) = await _fetch(connection, sql, args)
    return [read.processed(dialect, record[i]) for i, (read, _) in enumerate(reads)]


_PLACEHOLDER = re.compile(r"\$(\d+)")


@lru_cache(maxsize=256)
def _together(statements: tuple[str, ...]) -> tuple[str, int]:
    """One SELECT of the statements' rows as arrays, and how many arguments it takes."""
    columns = []
    offset = 0
    for i, sql in enumerate(statements):
        numbers = [int(n) for n in _PLACEHOLDER.findall(sql)]
        shifted = _PLACEHOLDER.sub(lambda m, at=offset: f"${int(m.group(1)) + at}", sql)
        columns.append(f"ARRAY(SELECT ROW(r.*) FROM ({shifted}) AS r) AS rows_{i}")
        offset += max(numbers, default=0)
    return "SELECT " + ", ".join(columns), offset


def _expanded(compiled: _Compiled, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """The SQL and arguments of a statement with IN lists: kept by the lists' lengths where
    the lengths are all the SQL depends on, else rendered by SQLAlchemy for this call."""
    assert compiled.expanding is not None
    if compiled.lists is None:
        state = compiled.expanding.construct_expanded_state(dict(params), escape_names=False)
        return state.statement, _arguments(state)
    values = {**compiled.literals, **params}
    for name in compiled.lists:
        if not isinstance(values[name], list | tuple):
            values[name] = list(values[name])  # a set, say: indexed below
    lengths = tuple(len(values[name]) for name in compiled.lists)
    expansion = compiled.expansions.get(lengths)
    if expansion is not None:
        return expansion.sql, expansion.arguments(values)
    state = compiled.expanding.construct_expanded_state(dict(params), escape_names=False)
    args = _arguments(state)
    _keep_expansion(compiled, values, lengths, state, args)
    return state.statement, args


def _arguments(state: ExpandedState) -> list[Any]:
    args = []
    for name in state.positiontup or ():
        process = state.processors.get(name)
        value = state.parameters[name]
        args.append(value if process is None else process(value))
    return args


def _keep_expansion(
    compiled: _Compiled,
    values: Mapping[str, Any],
    lengths: tuple[int, ...],
    state: ExpandedState,
    args: list[Any],
) -> None:
    """Remember what SQLAlchemy rendered for these lengths. Its names for a list's elements
    are ``<name>_1`` … ``<name>_<n>``; the expansion is kept only if reading the arguments
    back through those names gives exactly the arguments it made."""
    origin = {
        f"{name}_{i + 1}": (name, i)
        for name, length in zip(compiled.lists or (), lengths, strict=True)
        for i in range(length)
    }
    sources = tuple(
        (*origin.get(name, (name, None)), state.processors.get(name))
        for name in state.positiontup or ()
    )
    expansion = _Expansion(state.statement, sources)
    try:
        same = expansion.arguments(values) == args
    except (KeyError, IndexError):
        same = False
    if same:
        compiled.expansions[lengths] = expansion


def _result_processor(type_: Any, dialect: Dialect) -> Processor:
    impl = type_.dialect_impl(dialect)
    try:
        return impl.result_processor(dialect, None)  # type: ignore[no-any-return]
    except (TypeError, InvalidRequestError):
        # asyncpg's numeric types pick their conversion by the column's PostgreSQL type (a
        # sum of money is numeric, a float column float8), which only a cursor's description
        # tells; the values themselves tell the same.
        decorator = impl if isinstance(impl, TypeDecorator) else None
        numeric = decorator.impl_instance if decorator is not None else impl
        if not isinstance(numeric, sqltypes.NumericCommon):
            raise
        convert = _numeric_by_value(numeric)
        if decorator is None:
            return convert
        process = decorator.process_result_value
        return lambda value: process(convert(value), dialect)


def _numeric_by_value(numeric: sqltypes.NumericCommon[Any]) -> Callable[[Any], Any]:
    if numeric.asdecimal:
        to_decimal = processors.to_decimal_processor_factory(
            Decimal, numeric._effective_decimal_return_scale
        )
        return lambda value: to_decimal(value) if isinstance(value, float) else value
    return lambda value: float(value) if isinstance(value, Decimal) else value


def _is_operational(error: BaseException, connection: DriverConnection) -> bool:
    """A failure of the database rather than of the statement: what the ORM path answers with
    503 (``app.errors``)."""
    if connection.dialect.name == "sqlite":
        import sqlite3

        return isinstance(error, sqlite3.OperationalError)
    from app.db import connection_lost

    return connection_lost(error)
