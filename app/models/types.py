"""Portable column types: aware UTC timestamps and exact money on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, PlainSerializer
from sqlalchemy import DateTime, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

CENT = Decimal("0.01")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes in UTC; SQLite forgets the zone, so it is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class MoneyType(TypeDecorator[Decimal]):
    """NUMERIC(14, 2); values always come back quantised to cents."""

    impl = Numeric(14, 2, asdecimal=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value).quantize(CENT)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value)).quantize(CENT)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _money_str(value: Decimal) -> str:
    return f"{value.quantize(CENT)}"


Money = Annotated[
    Decimal,
    Field(max_digits=14, decimal_places=2, ge=0, examples=["12500.00"]),
    PlainSerializer(_money_str, return_type=str, when_used="json"),
]
"""A non-negative amount of the deployment's currency, written as a decimal string."""
