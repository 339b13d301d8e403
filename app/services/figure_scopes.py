"""Scopes and groups of scopes, and how a figure's statement is limited to a group, bound to
its periods and run (``services.figures`` builds the statements, one per kind of figure).

A figure is computed for a group of scopes of one kind at once: ``per_scope`` adds the
``GROUP BY`` the owner or the region and the group's ids as one bound list; ``in_periods``
binds each period's bounds, so a statement is built once per shape and run with values. A
report asks a ``Batch`` for all its figures, runs it once, and then reads each figure's value:
the statements go to the database together (``app.reads.rows_together``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, bindparam, or_, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import driver_connection
from app.models.performance import TargetScope
from app.models.types import CENT
from app.reads import Read, rows_together
from app.services.sql import dialect_of

Key = uuid.UUID | None
"""Which scope of a group a figure belongs to: a rep's or region's id, None for the company."""


@dataclass(frozen=True)
class Scope:
    """Whose figures: the company, one region, or one rep."""

    kind: TargetScope
    id: uuid.UUID | None = None

    def clause(self, owner: Any, region: Any) -> ColumnElement[bool]:
        column = _scope_column(self.kind, owner, region)
        return true() if column is None else column == self.id


SCOPE_IDS = "scope_ids"
"""The bound parameter that takes a group's ids."""


def _scope_column(kind: TargetScope, owner: Any, region: Any) -> Any:
    """The column that tells scopes of ``kind`` apart; None for the company."""
    if kind == TargetScope.REGION:
        return region
    if kind == TargetScope.REP:
        return owner
    return None


def per_scope(kind: TargetScope, stmt: Select[Any], owner: Any, region: Any) -> Select[Any]:
    """``stmt`` limited to the scopes bound as ``scope_ids`` and grouped by scope, the scope's
    id its last column; the company's as it is (one row over everything)."""
    column = _scope_column(kind, owner, region)
    if column is None:
        return stmt
    return (
        stmt.where(column.in_(bindparam(SCOPE_IDS, expanding=True)))
        .add_columns(column)
        .group_by(column)
    )


@dataclass(frozen=True)
class Group:
    """Scopes of one kind whose figures are computed together: the regions or reps in ``ids``,
    or (kind company, no ids) the company."""

    kind: TargetScope
    ids: tuple[uuid.UUID, ...] = ()

    @classmethod
    def of(cls, scope: Scope) -> Group:
        return cls(scope.kind, () if scope.id is None else (scope.id,))

    @property
    def keys(self) -> list[Key]:
        return [None] if self.kind == TargetScope.COMPANY else list(self.ids)

    @property
    def params(self) -> dict[str, Any]:
        """The values of the bound parameters ``per_scope`` adds."""
        return {} if self.kind == TargetScope.COMPANY else {SCOPE_IDS: list(self.ids)}


def ratio(part: Decimal | int | None, whole: Decimal | int | None) -> float | None:
    """part ÷ whole, or None where that is undefined (no whole, or a zero one)."""
    if part is None or whole is None or whole == 0:
        return None
    return round(float(Decimal(part) / Decimal(whole)), 6)


def growth(now: Decimal, before: Decimal) -> float | None:
    return None if before == 0 else round(float((now - before) / before), 6)


def money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT)


def within(column: Any, start: Any, end: Any) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


def in_periods(column: Any, count: int) -> tuple[list[ColumnElement[bool]], ColumnElement[bool]]:
    """Each of ``count`` periods' condition (bound as ``start_<i>`` and ``end_<i>``), and a
    condition for a row in any of them that also bounds the column by their whole span
    (``span_start``, ``span_end``), so an index on (scope, column) is read over that span only
    rather than over all the scope's rows (PostgreSQL takes no range from an OR)."""
    ranges = [within(column, bindparam(f"start_{i}"), bindparam(f"end_{i}")) for i in range(count)]
    span = within(column, bindparam("span_start"), bindparam("span_end"))
    return ranges, and_(span, or_(*ranges))


def period_params(bounds: Sequence[tuple[Any, Any]]) -> dict[str, Any]:
    """The values of ``in_periods``' parameters for these periods' bounds."""
    params = {"span_start": min(b[0] for b in bounds), "span_end": max(b[1] for b in bounds)}
    for i, (start, end) in enumerate(bounds):
        params[f"start_{i}"], params[f"end_{i}"] = start, end
    return params


def period_bounds() -> tuple[Any, Any]:
    """One period's bounds as the bound parameters ``start`` and ``end``."""
    return bindparam("start"), bindparam("end")


T = TypeVar("T")
U = TypeVar("U")


class Later(Generic[T]):
    """A figure's value, there once its batch has run (``value`` before then is an error);
    worked out from the rows the first time it is asked for."""

    __slots__ = ("_compute", "_known", "_value")

    def __init__(self, compute: Callable[[], T]) -> None:
        self._compute = compute
        self._known = False

    @property
    def value(self) -> T:
        if not self._known:
            self._value = self._compute()
            self._known = True
        return self._value

    def map(self, convert: Callable[[T], U]) -> Later[U]:
        return Later(lambda: convert(self.value))


Rows = list[tuple[Any, ...]]


class Batch:
    """The statements of a report's figures for one group of scopes, run together.

    ``rows`` and ``grouped`` take a statement (built once, by the ``@cache`` builders of
    ``services.figures``) and its parameters and answer a ``Later``; ``run`` sends them all in
    one round trip on PostgreSQL, as ``Read``s on the request's connection (a summary's nine
    statements, each a round trip, cost it more CPU than its SQL: ``bench/README.md``).
    """

    def __init__(self, session: AsyncSession, group: Group) -> None:
        self.session = session
        self.group = group
        self.dialect = dialect_of(session)
        self._reads: list[tuple[Read, dict[str, Any]]] = []
        self._results: list[Rows] | None = None

    def rows(self, stmt: Select[Any], params: dict[str, Any]) -> Later[Rows]:
        if self._results is not None:
            raise RuntimeError("This batch has already run.")
        index = len(self._reads)
        self._reads.append((_read_of(stmt), params))
        return Later(lambda: self._rows(index))

    def grouped(
        self, stmt: Select[Any], params: dict[str, Any]
    ) -> Later[dict[Key, tuple[Any, ...]]]:
        """The aggregates of a ``per_scope`` statement per scope of the group (scopes without
        rows are missing), or over all its rows under the key None for the company."""
        company = self.group.kind == TargetScope.COMPANY
        return self.rows(stmt, {**self.group.params, **params}).map(
            lambda rows: _by_scope(rows, company)
        )

    async def run(self) -> None:
        connection = await driver_connection(self.session)
        self._results = await rows_together(connection, self._reads)

    def _rows(self, index: int) -> Rows:
        if self._results is None:
            raise RuntimeError("A figure was read before its batch ran.")
        return self._results[index]


@cache
def _read_of(stmt: Select[Any]) -> Read:
    return Read(stmt)


def _by_scope(rows: Rows, company: bool) -> dict[Key, tuple[Any, ...]]:
    if company:
        (row,) = rows
        return {None: row}
    return {row[-1]: row[:-1] for row in rows}
