"""The few SQL expressions PostgreSQL and SQLite spell differently."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def days_between(session: AsyncSession, start: Any, end: Any) -> Any:
    """``end - start`` in (fractional) days."""
    if _dialect(session) == "sqlite":
        return func.julianday(end) - func.julianday(start)
    return func.extract("epoch", end - start) / 86400


def month_of(session: AsyncSession, day: Any) -> Any:
    """A date column's month as ``YYYY-MM``."""
    if _dialect(session) == "sqlite":
        return func.strftime("%Y-%m", day)
    return func.to_char(day, "YYYY-MM")
