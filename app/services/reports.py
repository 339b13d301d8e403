"""Leaderboard, funnel, forecast and commissions: the reports built on the summary's figures."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Float, and_, case, cast, func, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.models.people import Region, Role, User
from app.models.performance import Metric, TargetScope
from app.models.pipeline import FUNNEL_STAGES, OPEN_STAGES, Opportunity, Stage
from app.models.platform import StateChange
from app.models.types import CENT, Money
from app.periods import Period
from app.services import department, figures
from app.services.figure_scopes import Batch, Group, Scope, money, ratio, within
from app.services.figures import _probability
from app.services.performance import standings
from app.services.sql import constant_in, days_between, for_reports, month_of


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
    """Reps of a region, or (without ``region_id``) the regions, best KPI score first; 404
    for a region that does not exist (an empty board would pass for one without reps)."""
    if region_id is not None:
        if await session.scalar(select(Region.id).where(Region.id == region_id)) is None:
            raise NotFound(f"No region with id {region_id}.")
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
    figures = await standings(session, Group(kind, tuple(scope_id for scope_id, _ in rows)), period)
    entries = [
        LeaderboardEntry(
            rank=0,
            scope=kind,
            scope_id=scope_id,
            name=name,
            kpi_score=figures[scope_id].kpi_score,
            signed_revenue=figures[scope_id].signed_revenue,
            revenue_attainment=figures[scope_id].revenue_attainment,
            collected_payments=figures[scope_id].collected_payments,
            win_rate=figures[scope_id].win_rate,
        )
        for scope_id, name in rows
    ]
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
    await for_reports(session)
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
                    .where(live, constant_in(Opportunity.stage, OPEN_STAGES))
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

    entered, advanced, days_in = await _stage_flows(session, scope, live, start, end)
    stages = []
    for index, stage in enumerate(FUNNEL_STAGES):
        has_next = index + 1 < len(FUNNEL_STAGES)
        count, amount = now_rows.get(stage.value, (0, None))
        stages.append(
            FunnelStage(
                stage=stage,
                count=int(count or 0),
                amount=money(amount),
                entered=entered.get(stage, 0),
                advanced=advanced.get(stage, 0),
                conversion=ratio(advanced.get(stage, 0), entered.get(stage, 0))
                if has_next
                else None,
                avg_days_in_stage=days_in.get(stage),
            )
        )
    return Funnel(period=period.label, scope=scope.kind, scope_id=scope.id, stages=stages)


async def _stage_flows(
    session: AsyncSession, scope: Scope, live: Any, start: Any, end: Any
) -> tuple[dict[str, int], dict[str, int], dict[str, float]]:
    """Per stage: how many opportunities entered it in the period, how many of those reached
    the next stage since, and the mean length of the stays in it that ended in the period.

    Entering the funnel (the lead stage) is being created, and a new opportunity advanced
    once it has been moved to contacted. Entering another stage is a state change to it,
    which advanced once the opportunity moved on from it to the next stage: the workflow
    stamps that on the change (``next_state_at``). A stay runs from entering the stage
    (``from_state_at``, also kept with each change) to the change that left it.

    So everything comes from the scope's stage changes in the period, one range of an index
    on (scope, time) that carries what is read (each change has its opportunity's owner and
    region), plus the moves to contacted since the period began; no opportunity's history
    is read.
    """
    deleted = select(Opportunity.id).where(
        scope.clause(Opportunity.owner_id, Opportunity.region_id),
        Opportunity.deleted_at.is_not(None),
    )
    in_scope = and_(
        StateChange.entity_type == "opportunity",
        scope.clause(StateChange.owner_id, StateChange.region_id),
        StateChange.entity_id.not_in(deleted),
    )
    in_period = within(StateChange.at, start, end)
    contacted = select(StateChange.entity_id).where(
        in_scope, StateChange.at >= start, StateChange.to_state == Stage.CONTACTED
    )
    per_opportunity = (
        select(
            StateChange.to_state.label("stage"),
            func.max(case((StateChange.next_state_at.is_not(None), 1), else_=0)).label("advanced"),
        )
        .where(in_scope, in_period, StateChange.to_state.in_(FUNNEL_STAGES[1:]))
        .group_by(StateChange.to_state, StateChange.entity_id)
        .subquery("per_opportunity")
    )
    stay = days_between(session, StateChange.from_state_at, StateChange.at)
    nothing = cast(null(), Float)
    rows = (
        await session.execute(
            union_all(
                select(
                    literal("flow"),
                    literal(Stage.LEAD.value),
                    cast(func.count(), Float),
                    cast(func.count(case((Opportunity.id.in_(contacted), 1))), Float),
                    nothing,
                ).where(live, within(Opportunity.created_at, start, end)),
                select(
                    literal("flow"),
                    per_opportunity.c.stage,
                    cast(func.count(), Float),
                    cast(func.sum(per_opportunity.c.advanced), Float),
                    nothing,
                ).group_by(per_opportunity.c.stage),
                select(
                    literal("stay"),
                    StateChange.from_state,
                    nothing,
                    nothing,
                    cast(func.avg(stay), Float),
                )
                .where(in_scope, in_period, StateChange.from_state.in_(OPEN_STAGES))
                .group_by(StateChange.from_state),
            )
        )
    ).all()
    entered, advanced, days = {}, {}, {}
    for kind, stage, count, moved_on, mean in rows:
        if kind == "flow":
            entered[stage], advanced[stage] = int(count), int(moved_on)
        elif mean is not None:
            days[stage] = round(float(mean), 2)
    return entered, advanced, days


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
    await for_reports(session)
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
                constant_in(Opportunity.stage, OPEN_STAGES),
            )
            .group_by(month)
            .order_by(month)
        )
    ).all()
    months = [
        ForecastMonth(
            month=m, count=int(c), amount=money(a), weighted=money(Decimal(str(w or 0)) / 100)
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
    plan: department.CommissionPlan = Field(description="The plan of the period's year.")
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
    await for_reports(session)
    settings = await department.load(session)
    # A period uses the plan of its year, the one its label names (a week's ISO year).
    plan = settings.commission_plan(int(period.label[:4]))
    reps = select(User.id, User.full_name, User.region_id).where(User.role == Role.REP)
    if region_id is not None:
        reps = reps.where(User.region_id == region_id)
    if rep_id is not None:
        reps = reps.where(User.id == rep_id)
    rep_rows = (await session.execute(reps.order_by(User.full_name))).all()
    batch = Batch(session, Group(TargetScope.REP, tuple(rep for rep, _, _ in rep_rows)))
    collected = figures.collected_payments(batch, (period,))
    targets = figures.targets(batch, period)
    await batch.run()
    items = []
    for rep, name, rep_region in rep_rows:
        amount = collected.value.get(rep, [money(0)])[0]
        target = targets.value.get((rep, Metric.COLLECTED_PAYMENTS))
        tiers = commission_tiers(plan, amount, target)
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
    return Commissions(period=period.label, plan=plan, items=items)
