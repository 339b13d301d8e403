"""Leaderboard, funnel, forecast and commissions: the reports built on the summary's figures."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.models.contracts import Contract, Payment
from app.models.people import Region, Role, User
from app.models.performance import Metric, Target, TargetScope
from app.models.pipeline import OPEN_STAGES, Opportunity, Stage
from app.models.platform import StateChange
from app.models.types import CENT, Money
from app.periods import Period
from app.services import department
from app.services.performance import Scope, _money, _probability, ratio, summary
from app.services.sql import days_between, month_of

FUNNEL_STAGES: tuple[Stage, ...] = (*OPEN_STAGES, Stage.WON)


class LeaderboardEntry(BaseModel):
    rank: int
    scope: TargetScope
    scope_id: uuid.UUID
    name: str
    kpi_score: float | None
    signed_revenue: Money
    revenue_attainment: float | None
    collected_payments: Money
    win_rate: float | None


class Leaderboard(BaseModel):
    period: str
    region_id: uuid.UUID | None
    items: list[LeaderboardEntry]


async def leaderboard(
    session: AsyncSession, period: Period, region_id: uuid.UUID | None
) -> Leaderboard:
    """Reps of a region, or (without ``region_id``) the regions, best KPI score first."""
    if region_id is not None:
        rows = (
            await session.execute(
                select(User.id, User.full_name).where(
                    User.role == Role.REP, User.region_id == region_id, User.is_active.is_(True)
                )
            )
        ).all()
        kind = TargetScope.REP
    else:
        rows = (await session.execute(select(Region.id, Region.name))).all()
        kind = TargetScope.REGION
    entries = []
    for scope_id, name in rows:
        figures = await summary(session, Scope(kind, scope_id), period)
        revenue = figures.metrics[Metric.SIGNED_REVENUE]
        entries.append(
            LeaderboardEntry(
                rank=0,
                scope=kind,
                scope_id=scope_id,
                name=name,
                kpi_score=figures.kpi_score,
                signed_revenue=revenue.actual,
                revenue_attainment=revenue.attainment,
                collected_payments=figures.metrics[Metric.COLLECTED_PAYMENTS].actual,
                win_rate=figures.win_rate,
            )
        )
    entries.sort(
        key=lambda e: (e.kpi_score is None, -(e.kpi_score or 0), -e.signed_revenue, e.name)
    )
    for position, entry in enumerate(entries, start=1):
        entry.rank = position
    return Leaderboard(period=period.label, region_id=region_id, items=entries)


class FunnelStage(BaseModel):
    stage: Stage
    count: int = Field(description="Open opportunities in this stage now (won: won in period).")
    amount: Money
    entered: int = Field(description="Opportunities that entered the stage in the period.")
    advanced: int = Field(description="Of those, how many reached the next stage since.")
    conversion: float | None = Field(description="advanced ÷ entered")
    avg_days_in_stage: float | None = Field(
        description="Mean length of the stays in this stage that ended in the period."
    )


class Funnel(BaseModel):
    period: str
    scope: TargetScope
    scope_id: uuid.UUID | None
    stages: list[FunnelStage]


async def funnel(session: AsyncSession, scope: Scope, period: Period) -> Funnel:
    settings = await department.load(session)
    start, end = period.utc_bounds(settings.business_hours.time_zone)
    live = and_(
        scope.clause(Opportunity.owner_id, Opportunity.region_id), Opportunity.deleted_at.is_(None)
    )
    now_rows = dict(
        (
            (stage, (count, amount))
            for stage, count, amount in (
                await session.execute(
                    select(Opportunity.stage, func.count(), func.sum(Opportunity.amount))
                    .where(live, Opportunity.stage.in_(OPEN_STAGES))
                    .group_by(Opportunity.stage)
                )
            ).all()
        )
    )
    won_row = (
        await session.execute(
            select(func.count(), func.sum(Opportunity.amount)).where(
                live,
                Opportunity.stage == Stage.WON,
                Opportunity.won_at >= start,
                Opportunity.won_at < end,
            )
        )
    ).one()
    now_rows[Stage.WON.value] = (won_row[0], won_row[1])

    change = aliased(StateChange)
    later = aliased(StateChange)
    opp_ids = select(Opportunity.id).where(live)
    stages = []
    for index, stage in enumerate(FUNNEL_STAGES):
        nxt = FUNNEL_STAGES[index + 1] if index + 1 < len(FUNNEL_STAGES) else None
        if stage == Stage.LEAD:
            # Entering the funnel is being created.
            entered_q = select(
                Opportunity.id.label("entity_id"), Opportunity.created_at.label("at")
            ).where(live, Opportunity.created_at >= start, Opportunity.created_at < end)
        else:
            entered_q = select(change.entity_id.label("entity_id"), change.at.label("at")).where(
                change.entity_type == "opportunity",
                change.to_state == stage,
                change.at >= start,
                change.at < end,
                change.entity_id.in_(opp_ids),
            )
        entries = entered_q.subquery()
        entered = await session.scalar(select(func.count(func.distinct(entries.c.entity_id))))
        advanced = 0
        if nxt is not None:
            advanced = await session.scalar(
                select(func.count(func.distinct(entries.c.entity_id))).where(
                    exists().where(
                        later.entity_type == "opportunity",
                        later.entity_id == entries.c.entity_id,
                        later.to_state == nxt,
                        later.at >= entries.c.at,
                    )
                )
            )
        count, amount = now_rows.get(stage.value, (0, None))
        stages.append(
            FunnelStage(
                stage=stage,
                count=int(count or 0),
                amount=_money(amount),
                entered=int(entered or 0),
                advanced=int(advanced or 0),
                conversion=ratio(advanced, entered) if nxt else None,
                avg_days_in_stage=await _avg_days_in(session, stage, opp_ids, start, end),
            )
        )
    return Funnel(period=period.label, scope=scope.kind, scope_id=scope.id, stages=stages)


async def _avg_days_in(
    session: AsyncSession, stage: Stage, opp_ids: Any, start: Any, end: Any
) -> float | None:
    """Stays in ``stage`` that ended in the period: from entering it (the previous change, or
    creation for a lead) to the change that left it."""
    if stage == Stage.WON:
        return None
    previous = func.lag(StateChange.at).over(
        partition_by=StateChange.entity_id, order_by=(StateChange.at, StateChange.id)
    )
    changes = (
        select(
            StateChange.entity_id,
            StateChange.from_state,
            StateChange.at,
            previous.label("entered_at"),
        )
        .where(StateChange.entity_type == "opportunity", StateChange.entity_id.in_(opp_ids))
        .subquery()
    )
    entered_at = func.coalesce(changes.c.entered_at, Opportunity.created_at)
    value = await session.scalar(
        select(func.avg(days_between(session, entered_at, changes.c.at)))
        .select_from(changes)
        .join(Opportunity, Opportunity.id == changes.c.entity_id)
        .where(changes.c.from_state == stage, changes.c.at >= start, changes.c.at < end)
    )
    return None if value is None else round(float(value), 2)


class ForecastMonth(BaseModel):
    month: str | None = Field(description="YYYY-MM; null for opportunities without a date.")
    count: int
    amount: Money
    weighted: Money = Field(description="Sum of amount × probability.")


class Forecast(BaseModel):
    scope: TargetScope
    scope_id: uuid.UUID | None
    months: list[ForecastMonth]
    total_weighted: Money


async def forecast(session: AsyncSession, scope: Scope) -> Forecast:
    month = month_of(session, Opportunity.expected_close_date).label("month")
    rows = (
        await session.execute(
            select(
                month,
                func.count(),
                func.sum(Opportunity.amount),
                func.sum(Opportunity.amount * _probability()),
            )
            .where(
                scope.clause(Opportunity.owner_id, Opportunity.region_id),
                Opportunity.deleted_at.is_(None),
                Opportunity.stage.in_(OPEN_STAGES),
            )
            .group_by(month)
            .order_by(month)
        )
    ).all()
    months = [
        ForecastMonth(
            month=m, count=int(c), amount=_money(a), weighted=_money(Decimal(str(w or 0)) / 100)
        )
        for m, c, a, w in rows
    ]
    months.sort(key=lambda m: (m.month is None, m.month or ""))
    total = sum((m.weighted for m in months), Decimal("0.00"))
    return Forecast(scope=scope.kind, scope_id=scope.id, months=months, total_weighted=total)


class CommissionTier(BaseModel):
    tier: str
    base: Money
    rate: Decimal
    amount: Money


class RepCommission(BaseModel):
    rep_id: uuid.UUID
    name: str
    region_id: uuid.UUID | None
    collected: Money
    target: Money | None
    attainment: float | None
    tiers: list[CommissionTier]
    commission: Money


class Commissions(BaseModel):
    period: str
    plan: department.CommissionPlan
    items: list[RepCommission]


def commission_tiers(
    plan: department.CommissionPlan, collected: Decimal, target: Decimal | None
) -> list[CommissionTier]:
    """The plan applied to one rep: below the low threshold everything earns the low rate;
    otherwise the base rate up to the target and the higher rate on the part above it.
    Without a target, everything earns the base rate."""

    def tier(name: str, base: Decimal, rate: Decimal) -> CommissionTier:
        return CommissionTier(tier=name, base=base, rate=rate, amount=(base * rate).quantize(CENT))

    if target is None or target <= 0:
        return [tier("no_target", collected, plan.base_rate)]
    if collected < target * plan.low_attainment_below:
        return [tier("below_threshold", collected, plan.low_rate)]
    up_to_target = min(collected, target)
    tiers = [tier("up_to_target", up_to_target, plan.base_rate)]
    if collected > target:
        tiers.append(tier("above_target", collected - target, plan.above_target_rate))
    return tiers


async def commissions(
    session: AsyncSession,
    period: Period,
    region_id: uuid.UUID | None,
    rep_id: uuid.UUID | None,
) -> Commissions:
    settings = await department.load(session)
    reps = select(User.id, User.full_name, User.region_id).where(User.role == Role.REP)
    if region_id is not None:
        reps = reps.where(User.region_id == region_id)
    if rep_id is not None:
        reps = reps.where(User.id == rep_id)
    collected = dict(
        (
            await session.execute(
                select(Contract.owner_id, func.sum(Payment.amount))
                .join(Contract, Contract.id == Payment.contract_id)
                .where(Payment.received_on >= period.start, Payment.received_on < period.end)
                .group_by(Contract.owner_id)
            )
        ).all()
    )
    targets = dict(
        (
            await session.execute(
                select(Target.scope_id, Target.value).where(
                    Target.period == period.label,
                    Target.scope == TargetScope.REP,
                    Target.metric == Metric.COLLECTED_PAYMENTS,
                )
            )
        ).all()
    )
    items = []
    for rep, name, rep_region in (await session.execute(reps.order_by(User.full_name))).all():
        amount = _money(collected.get(rep))
        target = _money(targets[rep]) if rep in targets else None
        tiers = commission_tiers(settings.commission, amount, target)
        items.append(
            RepCommission(
                rep_id=rep,
                name=name,
                region_id=rep_region,
                collected=amount,
                target=target,
                attainment=ratio(amount, target),
                tiers=tiers,
                commission=sum((t.amount for t in tiers), Decimal("0.00")),
            )
        )
    return Commissions(period=period.label, plan=settings.commission, items=items)
