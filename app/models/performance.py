"""Department settings, sales targets and market sizes."""

from __future__ import annotations

import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pydantic
from sqlalchemy import Index, String
from sqlmodel import Field

from app.models.base import InputSchema, JSONType, RecordBase, ResourceRead
from app.models.types import Money, MoneyType
from app.periods import PERIOD_PATTERN


class SettingsRecord(RecordBase, table=True):
    """The one row of department settings (the defaults fill in whatever it leaves out)."""

    __tablename__ = "department_settings"

    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)


class TargetScope(StrEnum):
    COMPANY = "company"
    REGION = "region"
    REP = "rep"


class Metric(StrEnum):
    SIGNED_REVENUE = "signed_revenue"
    COLLECTED_PAYMENTS = "collected_payments"
    NEW_CUSTOMERS = "new_customers"


class Target(RecordBase, table=True):
    __tablename__ = "targets"
    __table_args__ = (
        Index(
            "uq_targets_period_scope_metric", "period", "scope", "scope_id", "metric", unique=True
        ),
    )

    period: str = Field(max_length=7)
    scope: str = Field(sa_type=String(16))
    scope_id: uuid.UUID | None = Field(default=None)
    metric: str = Field(sa_type=String(32))
    value: Decimal = Field(sa_type=MoneyType)
    # The region a target belongs to (a region's own id, a rep's region), for scope checks.
    region_id: uuid.UUID | None = Field(default=None, index=True)


def _period_field() -> Any:
    return pydantic.Field(
        pattern=PERIOD_PATTERN, examples=["2026-Q3"], description="YYYY, YYYY-Qn or YYYY-MM."
    )


class TargetCreate(InputSchema):
    period: str = _period_field()
    scope: TargetScope
    scope_id: uuid.UUID | None = pydantic.Field(
        default=None, description="The region or rep; none for the company."
    )
    metric: Metric
    value: Money = pydantic.Field(description="Money, or a count of new customers.")


class TargetUpdate(InputSchema):
    value: Money


class TargetRead(ResourceRead):
    period: str
    scope: TargetScope
    scope_id: uuid.UUID | None
    metric: Metric
    value: Money
    allocated: Money = pydantic.Field(description="The sum of the children's targets.")
    allocation: float | None = pydantic.Field(
        description="allocated ÷ value (over 1 is allowed); null for a rep or a zero target."
    )

    def unversioned(self) -> tuple[Any, ...]:
        return (*super().unversioned(), self.allocated)  # the children's targets, rows of their own


class MarketSize(RecordBase, table=True):
    __tablename__ = "market_sizes"
    __table_args__ = (Index("uq_market_sizes_region_period", "region_id", "period", unique=True),)

    region_id: uuid.UUID = Field(foreign_key="regions.id")
    period: str = Field(max_length=7)
    value: Decimal = Field(sa_type=MoneyType)


class MarketSizeCreate(InputSchema):
    region_id: uuid.UUID
    period: str = _period_field()
    value: Money


class MarketSizeRead(ResourceRead):
    region_id: uuid.UUID
    period: str
    value: Money
