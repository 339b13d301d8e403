"""The department's business settings: cadences, thresholds and other tunable rules.

The numbers are the defaults of the sales handbook; a director will edit them through
``/settings`` (see the performance issue), which is why services read them from here.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import get_settings


class ClassificationThresholds(BaseModel):
    a_revenue: Decimal = Decimal("1000000.00")
    a_contracts: int = 3
    b_revenue: Decimal = Decimal("200000.00")
    b_open_opportunity: Decimal = Decimal("200000.00")


class DepartmentSettings(BaseModel):
    follow_up_cadence_days: dict[str, int] = Field(
        default_factory=lambda: {"A": 7, "B": 14, "C": 30}
    )
    dormant_after_days: int = 180
    # A discount up to this effective percentage is the region's manager's to approve;
    # above it, the director's.
    manager_max_discount_percent: Decimal = Decimal("10.00")
    classification: ClassificationThresholds = Field(default_factory=ClassificationThresholds)


async def load(session: AsyncSession) -> DepartmentSettings:
    """The settings in force for this request's transaction."""
    del session  # stored settings arrive with /settings; until then the defaults hold
    return DepartmentSettings()


def today() -> date:
    """The date now in the department's time zone (validity dates are local dates)."""
    return datetime.now(ZoneInfo(get_settings().time_zone)).date()
