"""The few SQL expressions PostgreSQL and SQLite spell (or plan) differently."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, any_, func, literal_column, text
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def days_between_sql(dialect: str, start: Any, end: Any) -> Any:
    """``end - start`` in (fractional) days, in ``dialect``'s SQL (for statements built once
    per dialect)."""
    if dialect == "sqlite":
        return func.julianday(end) - func.julianday(start)
    return func.extract("epoch", end - start) / 86400


def days_between(session: AsyncSession, start: Any, end: Any) -> Any:
    """``end - start`` in (fractional) days."""
    return days_between_sql(dialect_of(session), start, end)


def month_of(session: AsyncSession, day: Any) -> Any:
    """A date column's month as ``YYYY-MM``."""
    if dialect_of(session) == "sqlite":
        return func.strftime("%Y-%m", day)
    return func.to_char(day, "YYYY-MM")


def among(session: AsyncSession, column: Any, values: Select[Any]) -> ColumnElement[bool]:
    """``column IN (values)``, for a subquery of relatively few rows looked up in a big table.

    PostgreSQL plans ``IN (subquery)`` as a join sized by its estimate of the subquery's rows,
    and an estimate a few times too high makes it scan the whole big table; ``= ANY(ARRAY(…))``
    runs the subquery first and looks each value up in the index. SQLite always looks up.
    """
    if dialect_of(session) == "sqlite":
        return column.in_(values)
    return column == any_(func.array(values.scalar_subquery()))


def constant_in(column: Any, values: Iterable[str]) -> ColumnElement[bool]:
    """``column IN ('a', 'b', …)`` with the values written into the SQL, not bound.

    A partial index (``WHERE stage IN ('lead', …)``, the open pipeline's) serves a query only
    where the planner can prove that the query's condition implies the index's, and that
    takes constants. With bound values a prepared statement's generic plan, which PostgreSQL
    may switch to after five executions, cannot use the index: at two million opportunities
    the pipeline figure took 211 ms that way instead of 3 (bench/README.md, eleventh pass).
    Only for the code's own constants (enum values), never for input.
    """
    return column.in_([literal_column("'" + value.replace("'", "''") + "'") for value in values])


REPORT_SETTINGS = text(
    "SELECT set_config('jit', 'off', true), set_config('work_mem', '32MB', true)"
)


async def for_reports(session: AsyncSession) -> None:
    """Settings for a report's transaction (PostgreSQL; SQLite has none to make).

    No JIT: the planner's guesses for the correlated look-ups push a query of a few dozen
    milliseconds past ``jit_above_cost``, and compiling it then costs as much as running it
    (the app's connections have it off already, unless ``SALESDESK_DB_JIT`` turns it on).
    More ``work_mem``: the funnel's sorts and hashes of a region's quarter (a few MB) stay in
    memory instead of spilling to temporary files. Both end with the transaction, and are
    set in one round trip. The summary and the leaderboard need neither (they sort nothing
    big), so they run without a transaction (``app.db.autocommit_reads``).
    """
    if dialect_of(session) == "postgresql":
        await session.execute(REPORT_SETTINGS)
