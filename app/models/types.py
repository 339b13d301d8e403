"""Portable column types: aware UTC timestamps and exact money on PostgreSQL and SQLite."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, WithJsonSchema
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

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        # asyncpg reads timestamptz as aware datetimes in UTC whatever the session's time
        # zone, so there is nothing to put right: no call per value (a page of 50 customers
        # has 200 timestamps).
        if dialect.driver == "asyncpg":
            return None
        return super().result_processor(dialect, coltype)


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


MONEY_PATTERN = r"^\d{1,12}(\.\d{1,2})?$"
DECIMAL_PATTERN = r"^\d{1,12}(\.\d{1,6})?$"


def _decimal_text(pattern: str, example: str) -> BeforeValidator:
    """Takes a decimal written as a JSON string matching ``pattern`` (or a Decimal from our
    own code), never a JSON number: a float has already lost the exact value."""
    matches = re.compile(pattern).fullmatch

    def check(value: Any) -> Any:
        # The string goes on to pydantic's own (compiled) decimal parsing.
        if isinstance(value, Decimal) or (value.__class__ is str and matches(value)):
            return value
        raise ValueError(f'expected a decimal string such as "{example}"')

    return BeforeValidator(check)


Money = Annotated[
    Decimal,
    # The bounds before the validator: so they stay in pydantic's compiled decimal check.
    Field(max_digits=14, decimal_places=2, ge=0),
    _decimal_text(MONEY_PATTERN, "12500.00"),
    PlainSerializer(_money_str, return_type=str, when_used="json"),
    # One schema for requests and answers (answers always have two places).
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN, "examples": ["12500.00"]}),
]
"""A non-negative amount of the deployment's currency, written as a decimal string."""

DecimalText = Annotated[
    Decimal,
    _decimal_text(DECIMAL_PATTERN, "0.60"),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["0.60"]}),
]
"""A non-negative exact number other than money (a rate, a share, a percentage), written as a
decimal string; bounds go beside it as ``Field(ge=..., le=...)``."""

DecimalAnswer = Annotated[
    Decimal,
    WithJsonSchema({"type": "string", "format": "decimal", "examples": ["2.500"]}),
]
"""An exact number the API answers and never takes (a quantity or an effective discount
read back), written as a decimal string, so it has one schema wherever it is shown."""


def _iso_8601_only(value: Any) -> Any:
    # Pydantic would read 0.5 or "1700000000" as a Unix time; the API speaks ISO 8601 only.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("expected an ISO 8601 timestamp such as 2026-07-01T08:00:00Z")
    return value


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("the timestamp needs a time zone, e.g. 2026-07-01T08:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the timestamp is out of range") from exc


Timestamp = Annotated[datetime, BeforeValidator(_iso_8601_only), AfterValidator(_aware_utc)]
"""An ISO 8601 timestamp with a zone, as clients send it; held in UTC."""


def _iso_date_only(value: Any) -> Any:
    # As for timestamps: 0 or "1700000000" is not a date, whatever pydantic would make of it.
    if isinstance(value, date) or (isinstance(value, str) and not value.strip().isdigit()):
        return value
    raise ValueError("expected an ISO 8601 date such as 2026-07-01")


Day = Annotated[date, BeforeValidator(_iso_date_only)]
"""A calendar date, YYYY-MM-DD."""
