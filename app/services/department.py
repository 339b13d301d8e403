"""The department's business settings: cadences, thresholds, SLAs, KPI weights, commissions.

The numbers are the defaults of the sales handbook. The director edits them through
``/settings``; services read them with ``load`` so an edit applies to the next request.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.config import get_settings
from app.errors import ValidationFailed, VersionConflict
from app.models.base import never_null, refuse_null
from app.models.performance import SettingsRecord
from app.models.types import DecimalText, Money


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassificationThresholds(_Section):
    a_revenue: Money = Decimal("1000000.00")
    a_contracts: StrictInt = Field(default=3, ge=1)
    b_revenue: Money = Decimal("200000.00")
    b_open_opportunity: Money = Decimal("200000.00")


_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _clock_time(value: Any) -> Any:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and _CLOCK.match(value):
        return time.fromisoformat(value)
    raise ValueError("a local clock time is HH:MM, e.g. 09:00")


ClockTime = Annotated[
    time,
    BeforeValidator(_clock_time),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": _CLOCK.pattern, "examples": ["09:00"]}),
]
"""A wall-clock time in the department's zone, written HH:MM."""


class BusinessHours(_Section):
    """When the department works (上班时间 9:00—18:00, Monday to Friday by default)."""

    time_zone: str = Field(default_factory=lambda: get_settings().time_zone)
    # The defaults written as clients send them (a time's own JSON form is 09:00:00).
    start: ClockTime = Field(default=time(9, 0), json_schema_extra={"default": "09:00"})
    end: ClockTime = Field(default=time(18, 0), json_schema_extra={"default": "18:00"})
    working_days: list[StrictInt] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4], description="0 = Monday … 6 = Sunday."
    )


class ComplaintSla(_Section):
    """Hours to acknowledge and to resolve, counted round the clock from ``received_at``."""

    acknowledge_hours: StrictInt = Field(ge=1, le=24 * 90)
    resolve_hours: StrictInt = Field(ge=1, le=24 * 365)


def _default_complaint_slas() -> dict[str, ComplaintSla]:
    return {
        "critical": ComplaintSla(acknowledge_hours=1, resolve_hours=24),
        "high": ComplaintSla(acknowledge_hours=4, resolve_hours=72),
        "medium": ComplaintSla(acknowledge_hours=8, resolve_hours=120),
        "low": ComplaintSla(acknowledge_hours=24, resolve_hours=240),
    }


class KpiWeights(_Section):
    revenue_attainment: DecimalText = Field(default=Decimal("0.60"), ge=0, le=1)
    growth: DecimalText = Field(default=Decimal("0.20"), ge=0, le=1)
    market_share: DecimalText = Field(default=Decimal("0.10"), ge=0, le=1)
    satisfaction: DecimalText = Field(default=Decimal("0.10"), ge=0, le=1)


class CommissionPlan(_Section):
    """Commission on collected payments, tiered by attainment of the collection target."""

    low_attainment_below: DecimalText = Field(default=Decimal("0.60"), ge=0, le=1)
    low_rate: DecimalText = Field(default=Decimal("0.01"), ge=0, le=1)
    base_rate: DecimalText = Field(default=Decimal("0.03"), ge=0, le=1)
    above_target_rate: DecimalText = Field(default=Decimal("0.05"), ge=0, le=1)


_YEAR = re.compile(r"^(19|20|21)\d\d$")


def plan_for(plans: Mapping[str, CommissionPlan], year: int) -> CommissionPlan:
    """The plan of ``year``: its own, else the latest earlier year's; a year before every
    plan takes the earliest one, and without any plan the handbook's default applies."""
    if not plans:
        return CommissionPlan()
    earlier = [y for y in plans if int(y) <= year]
    return plans[max(earlier, key=int) if earlier else min(plans, key=int)]


def with_plan(
    plans: Mapping[str, CommissionPlan], year: int, plan: CommissionPlan
) -> dict[str, CommissionPlan]:
    """``plans`` with ``year``'s plan set, every other year's plan left as it was."""
    result = dict(plans)
    if not any(int(y) < year for y in plans):
        # The years before fall back to the earliest plan, which this one becomes or replaces:
        # the year before keeps the plan it had, and with it every year before that.
        result[str(year - 1)] = plan_for(plans, year - 1)
    result[str(year)] = plan
    return result


class DepartmentSettings(BaseModel):
    """Every tunable rule of the department, with the handbook's defaults."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _one_plan_for_every_year(cls, data: Any) -> Any:
        # Settings saved with a single ``commission`` plan applied it to every year.
        if isinstance(data, dict) and "commission" in data and "commission_plans" not in data:
            data = dict(data)
            data["commission_plans"] = {str(today().year): data.pop("commission")}
        return data

    follow_up_cadence_days: dict[str, StrictInt] = Field(
        default_factory=lambda: {"A": 7, "B": 14, "C": 30}
    )
    dormant_after_days: int = 180
    classification: ClassificationThresholds = Field(default_factory=ClassificationThresholds)
    # A discount up to this effective percentage is the region's manager's to approve;
    # above it, the director's.
    manager_max_discount_percent: DecimalText = Field(default=Decimal("10.00"), ge=0, le=100)
    # Contracts above this amount are reviewed by the director after the manager.
    contract_director_threshold: Money = Decimal("500000.00")
    contract_review_hours: StrictInt = Field(
        default=9, description="Working hours per review step."
    )
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    complaint_slas: dict[str, ComplaintSla] = Field(default_factory=_default_complaint_slas)
    kpi_weights: KpiWeights = Field(default_factory=KpiWeights)
    kpi_part_cap: DecimalText = Field(default=Decimal("1.50"), ge=1, le=10)
    commission_plans: dict[str, CommissionPlan] = Field(
        default_factory=dict,
        description="Commission plans by year (YYYY). A period uses its year's plan; a year "
        "without its own plan keeps the latest earlier year's (before the first, the first); "
        "without any, the handbook's default.",
        examples=[{"2026": CommissionPlan().model_dump(mode="json")}],
    )
    return_visit_within_days: StrictInt = Field(default=7, ge=1, le=90)

    def commission_plan(self, year: int) -> CommissionPlan:
        return plan_for(self.commission_plans, year)

    @model_validator(mode="after")
    def _coherent(self) -> DepartmentSettings:
        weights = self.kpi_weights
        total = weights.revenue_attainment + weights.growth + weights.market_share
        if total + weights.satisfaction != Decimal(1):
            raise ValueError("kpi_weights must add up to 1")
        for year, plan in self.commission_plans.items():
            if not _YEAR.match(year):
                raise ValueError(f"commission_plans: {year!r} is not a year (YYYY)")
            if not (0 < plan.low_attainment_below <= 1):
                raise ValueError("commission.low_attainment_below is a share of target in (0, 1]")
            if not (0 <= plan.low_rate <= plan.base_rate <= plan.above_target_rate < 1):
                raise ValueError("commission rates must be ordered: low ≤ base ≤ above target < 1")
        hours = self.business_hours
        if hours.start >= hours.end or not hours.working_days:
            raise ValueError("business hours need start < end and at least one working day")
        if not set(hours.working_days) <= set(range(7)):
            raise ValueError("working_days are 0 (Monday) to 6 (Sunday)")
        try:
            ZoneInfo(hours.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {hours.time_zone!r}") from exc
        if set(self.follow_up_cadence_days) != {"A", "B", "C"}:
            raise ValueError("follow_up_cadence_days needs exactly A, B and C")
        if any(not 1 <= days <= 365 for days in self.follow_up_cadence_days.values()):
            raise ValueError("follow-up cadences are 1 to 365 days")
        if set(self.complaint_slas) != {"critical", "high", "medium", "low"}:
            raise ValueError("complaint_slas needs critical, high, medium and low")
        for name, sla in self.complaint_slas.items():
            if sla.acknowledge_hours > sla.resolve_hours:
                raise ValueError(f"complaint_slas.{name}: acknowledge before resolve")
        return self


SETTINGS_ID = uuid.UUID(int=1)
_CACHE_KEY = "department_settings"


# The last saved settings this process parsed: (version, updated_at, the process's default
# time zone, a copy of the row's data, the parsed settings). Validating the row costs more
# than the rest of reading it, and it changes a few times a year, while the row itself is
# still read from the database with the caller (app.deps; between changes app.callers
# remembers the parsed settings instead), so an edit made by another process applies to this
# one's next request as before. A hit needs the version, the time stamp and the data itself
# to be equal (the comparison of a small dict costs microseconds), so a row changed without a
# new version, by hand say, is parsed again.
# The parsed settings are shared between requests: nobody changes them in place.
_parsed: tuple[int, datetime, str, dict[str, Any], DepartmentSettings] | None = None


def parse(record: SettingsRecord | None) -> DepartmentSettings:
    """The settings a saved row (or, without one, the defaults) stands for."""
    global _parsed
    if record is None:
        return DepartmentSettings.model_validate({})
    zone = get_settings().time_zone  # the default of business_hours.time_zone
    known = _parsed
    if (
        known is not None
        and known[0] == record.version
        and known[1] == record.updated_at
        and known[2] == zone
        and known[3] == record.data
    ):
        return known[4]
    settings = DepartmentSettings.model_validate(record.data)
    _parsed = (record.version, record.updated_at, zone, copy.deepcopy(record.data), settings)
    return settings


async def load(session: AsyncSession) -> DepartmentSettings:
    """The settings in force for this request's transaction (read once per transaction)."""
    cached = session.info.get(_CACHE_KEY)
    if cached is None:
        cached = parse(await session.get(SettingsRecord, SETTINGS_ID))
        session.info[_CACHE_KEY] = cached
    return cached


def use(session: AsyncSession, settings: DepartmentSettings) -> None:
    """Make ``settings`` what ``load`` answers for this session (read with the caller)."""
    session.info[_CACHE_KEY] = settings


def _sections_never_null(schema: dict[str, Any]) -> None:
    # A section may be left out, never sent as null (the merged settings refuse it).
    for section in schema["properties"].values():
        never_null(section)


class SettingsPatch(BaseModel):
    """Sections to replace; each given section is replaced whole and must be complete."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_sections_never_null)

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            raise refuse_null(info)
        return value

    follow_up_cadence_days: dict[str, StrictInt] | None = None
    dormant_after_days: StrictInt | None = Field(default=None, ge=1, le=3650)
    classification: ClassificationThresholds | None = None
    manager_max_discount_percent: DecimalText | None = Field(default=None, ge=0, le=100)
    contract_director_threshold: Money | None = None
    contract_review_hours: StrictInt | None = Field(default=None, ge=1, le=200)
    business_hours: BusinessHours | None = None
    complaint_slas: dict[str, ComplaintSla] | None = None
    kpi_weights: KpiWeights | None = None
    kpi_part_cap: DecimalText | None = Field(default=None, ge=1, le=10)
    commission: CommissionPlan | None = Field(
        default=None,
        description="This year's commission plan (the department's local year); other years "
        "keep theirs.",
    )
    commission_plans: dict[str, CommissionPlan] | None = Field(
        default=None,
        description="Plans of the years given (YYYY), each replaced whole; years not given "
        "keep theirs.",
    )
    return_visit_within_days: StrictInt | None = Field(default=None, ge=1, le=90)


class SettingsRead(DepartmentSettings):
    # Every setting is in every answer, the defaults filled in: required, not optional.
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    commission: CommissionPlan = Field(
        description="The commission plan of this year (the department's local year)."
    )
    version: int
    updated_at: datetime | None
    currency: str = Field(
        description="The ISO 4217 code of every amount of money: the deployment's "
        "(SALESDESK_CURRENCY), not changed here.",
        examples=["CNY"],
    )

    def unversioned(self) -> tuple[Any, ...]:
        """For the ETag (``app.routers.common.etag``): the deployment's settings this answer
        shows, which change without the row (the default time zone shows while no row is
        saved)."""
        return (self.currency, self.business_hours.time_zone)


async def read(session: AsyncSession, currency: str) -> SettingsRead:
    """The settings in force, with the deployment's ``currency``."""
    record = await session.get(SettingsRecord, SETTINGS_ID)
    settings = await load(session)
    return SettingsRead(
        **settings.model_dump(),
        commission=settings.commission_plan(today(settings).year),
        version=record.version if record else 0,
        updated_at=record.updated_at if record else None,
        currency=currency,
    )


async def update(session: AsyncSession, changes: dict[str, Any], expected: int | None) -> None:
    """Replace the top-level sections given in ``changes``; the result must be coherent
    (``read`` answers it)."""
    record = await session.get(SettingsRecord, SETTINGS_ID)
    if expected is not None and (record.version if record else 0) != expected:
        raise VersionConflict()
    settings = await load(session)
    current = settings.model_dump(mode="json")
    plans = dict(settings.commission_plans)
    years: dict[int, Any] = {}
    for year, plan in (changes.get("commission_plans") or {}).items():
        if not _YEAR.match(year):
            raise ValidationFailed(["body", "commission_plans", year], "A year is YYYY.")
        years[int(year)] = plan
    if changes.get("commission") is not None:
        years.setdefault(today(settings).year, changes["commission"])
    for year in sorted(years, reverse=True):
        # Latest first, so each year pins the years before it as they were before this change.
        plans = with_plan(plans, year, CommissionPlan.model_validate(years[year]))
    sections = {k: v for k, v in changes.items() if k not in ("commission", "commission_plans")}
    if years:
        sections["commission_plans"] = {y: p.model_dump(mode="json") for y, p in plans.items()}
    try:
        merged = DepartmentSettings.model_validate({**current, **sections})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValidationFailed(["body", *first["loc"]], first["msg"]) from exc
    data = merged.model_dump(mode="json")
    if record is None:
        record = SettingsRecord(id=SETTINGS_ID, data=data)
        session.add(record)
    else:
        record.data = data
    await session.flush()
    session.info[_CACHE_KEY] = merged
    events.record(session, "settings.updated", record, {"changed": sorted(changes)})


def local_date(settings: DepartmentSettings, moment: datetime | None) -> date | None:
    """The department's local date of ``moment`` (a signature's day, say)."""
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(settings.business_hours.time_zone)).date()


def today(settings: DepartmentSettings | None = None) -> date:
    """The date now in the department's time zone (validity dates are local dates)."""
    zone = settings.business_hours.time_zone if settings else get_settings().time_zone
    return datetime.now(ZoneInfo(zone)).date()


async def refuse_past(
    session: AsyncSession, loc: Sequence[str | int], value: date | None, what: str
) -> None:
    """422 on ``loc`` when ``value`` is before today in the department's time zone: a date
    a record plans (a close, a delivery, an installment, a validity) is today or later.
    ``what`` begins the message: "A delivery is planned for" → "… today (2026-12-08) or
    later"."""
    if value is None:
        return
    now = today(await load(session))
    if value < now:
        raise ValidationFailed(list(loc), f"{what} today ({now}) or later, not {value}.")
