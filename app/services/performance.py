"""The performance summary: actuals, targets, attainment, growth and the KPI score.

Every figure is one aggregate query over the period's rows in the requested scope; periods
are local to the department's time zone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, and_, case, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Forbidden, NotFound, ValidationFailed
from app.models.complaints import Complaint, ComplaintStatus
from app.models.contracts import Contract, ContractStatus, Payment
from app.models.customers import Customer, FollowUp, FollowUpKind, FollowUpStatus
from app.models.people import Region, Role, User
from app.models.performance import MarketSize, Metric, Target, TargetScope
from app.models.pipeline import OPEN_STAGES, STAGE_PROBABILITY, Opportunity, Stage
from app.models.types import CENT, Money, utcnow
from app.periods import Period
from app.permissions import Actor
from app.services import department
from app.services.complaint_sla import breached_clause
from app.services.sql import days_between

NOT_SIGNED_REVENUE = (ContractStatus.CANCELLED, ContractStatus.TERMINATED)


@dataclass(frozen=True)
class Scope:
    """Whose figures: the company, one region, or one rep."""

    kind: TargetScope
    id: uuid.UUID | None = None

    def clause(self, owner: Any, region: Any) -> ColumnElement[bool]:
        if self.kind == TargetScope.REGION:
            return region == self.id
        if self.kind == TargetScope.REP:
            return owner == self.id
        return true()


class MetricFigures(BaseModel):
    actual: Money
    target: Money | None
    attainment: float | None
    growth_vs_previous: float | None
    growth_vs_last_year: float | None


class Summary(BaseModel):
    period: str
    scope: TargetScope
    scope_id: uuid.UUID | None
    metrics: dict[Metric, MetricFigures]
    opportunities_won: int
    opportunities_lost: int
    win_rate: float | None = Field(description="won ÷ (won + lost)")
    avg_sales_cycle_days: float | None
    pipeline_value: Money = Field(description="Open opportunities expected to close in the period.")
    weighted_pipeline: Money
    avg_satisfaction: float | None = Field(description="Return visits and closed complaints, 1–5.")
    complaints_received: int
    sla_breaches: int
    market_share: float | None
    kpi_score: float | None


def ratio(part: Decimal | int | None, whole: Decimal | int | None) -> float | None:
    """part ÷ whole, or None where that is undefined (no whole, or a zero one)."""
    if part is None or whole is None or whole == 0:
        return None
    return round(float(Decimal(part) / Decimal(whole)), 6)


def growth(now: Decimal, before: Decimal) -> float | None:
    return None if before == 0 else round(float((now - before) / before), 6)


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT)


async def _sum(session: AsyncSession, stmt: Select[Any]) -> Decimal:
    return _money(await session.scalar(stmt))


async def metric_actual(
    session: AsyncSession, metric: Metric, scope: Scope, period: Period, zone: str
) -> Decimal:
    start, end = period.utc_bounds(zone)
    in_scope = scope.clause(Contract.owner_id, Contract.region_id)
    if metric == Metric.SIGNED_REVENUE:
        return await _sum(
            session,
            select(func.sum(Contract.amount)).where(
                in_scope,
                Contract.signed_at >= start,
                Contract.signed_at < end,
                Contract.status.not_in(NOT_SIGNED_REVENUE),
            ),
        )
    if metric == Metric.COLLECTED_PAYMENTS:
        return await _sum(
            session,
            select(func.sum(Payment.amount))
            .join(Contract, Contract.id == Payment.contract_id)
            .where(in_scope, Payment.received_on >= period.start, Payment.received_on < period.end),
        )
    # New customers: those whose first signed contract was signed in the period.
    first = (
        select(Contract.customer_id, func.min(Contract.signed_at).label("first_signed"))
        .where(Contract.signed_at.is_not(None), Contract.status != ContractStatus.CANCELLED)
        .group_by(Contract.customer_id)
        .subquery()
    )
    firsts = (
        select(func.count())
        .select_from(first)
        .join(
            Contract,
            and_(
                Contract.customer_id == first.c.customer_id,
                Contract.signed_at == first.c.first_signed,
            ),
        )
        .where(in_scope, first.c.first_signed >= start, first.c.first_signed < end)
    )
    return Decimal(await session.scalar(firsts) or 0)


async def target_value(
    session: AsyncSession, metric: Metric, scope: Scope, period: Period
) -> Decimal | None:
    scope_id = Target.scope_id.is_(None) if scope.id is None else Target.scope_id == scope.id
    value = await session.scalar(
        select(Target.value).where(
            Target.period == period.label,
            Target.scope == scope.kind,
            scope_id,
            Target.metric == metric,
        )
    )
    return None if value is None else _money(value)


async def _metric_figures(
    session: AsyncSession, metric: Metric, scope: Scope, period: Period, zone: str
) -> MetricFigures:
    actual = await metric_actual(session, metric, scope, period, zone)
    previous = await metric_actual(session, metric, scope, period.previous(), zone)
    last_year = await metric_actual(session, metric, scope, period.year_before(), zone)
    target = await target_value(session, metric, scope, period)
    return MetricFigures(
        actual=actual,
        target=target,
        attainment=ratio(actual, target),
        growth_vs_previous=growth(actual, previous),
        growth_vs_last_year=growth(actual, last_year),
    )


def _probability() -> Any:
    default = case(
        *((Opportunity.stage == stage, STAGE_PROBABILITY[stage]) for stage in OPEN_STAGES), else_=0
    )
    return func.coalesce(Opportunity.probability, default)


async def _pipeline(session: AsyncSession, scope: Scope, period: Period) -> tuple[Decimal, Decimal]:
    row = (
        await session.execute(
            select(
                func.sum(Opportunity.amount), func.sum(Opportunity.amount * _probability())
            ).where(
                scope.clause(Opportunity.owner_id, Opportunity.region_id),
                Opportunity.deleted_at.is_(None),
                Opportunity.stage.in_(OPEN_STAGES),
                Opportunity.expected_close_date >= period.start,
                Opportunity.expected_close_date < period.end,
            )
        )
    ).one()
    return _money(row[0]), _money(Decimal(str(row[1] or 0)) / 100)


async def _won_lost(
    session: AsyncSession, scope: Scope, period: Period, zone: str
) -> tuple[int, int, float | None]:
    start, end = period.utc_bounds(zone)
    in_scope = and_(
        scope.clause(Opportunity.owner_id, Opportunity.region_id),
        Opportunity.deleted_at.is_(None),
        Opportunity.closed_at >= start,
        Opportunity.closed_at < end,
    )
    won_flag = case((Opportunity.stage == Stage.WON, 1), else_=0)
    cycle = case(
        (
            Opportunity.stage == Stage.WON,
            days_between(session, Opportunity.created_at, Opportunity.won_at),
        ),
        else_=None,
    )
    row = (
        await session.execute(
            select(func.sum(won_flag), func.count(), func.avg(cycle)).where(
                in_scope, Opportunity.stage.in_((Stage.WON, Stage.LOST))
            )
        )
    ).one()
    won = int(row[0] or 0)
    return won, int(row[1] or 0) - won, (None if row[2] is None else round(float(row[2]), 2))


async def _satisfaction(
    session: AsyncSession, scope: Scope, period: Period, zone: str
) -> float | None:
    """The mean score of return visits and closed complaints in the period."""
    start, end = period.utc_bounds(zone)
    visits = (
        await session.execute(
            select(func.sum(FollowUp.satisfaction), func.count(FollowUp.satisfaction)).where(
                FollowUp.kind == FollowUpKind.RETURN_VISIT,
                FollowUp.status == FollowUpStatus.DONE,
                FollowUp.satisfaction.is_not(None),
                FollowUp.occurred_at >= start,
                FollowUp.occurred_at < end,
                FollowUp.customer_id.in_(_customers_in(scope)),
            )
        )
    ).one()
    complaints = (
        await session.execute(
            select(func.sum(Complaint.satisfaction), func.count(Complaint.satisfaction)).where(
                scope.clause(Complaint.owner_id, Complaint.region_id),
                Complaint.status == ComplaintStatus.CLOSED,
                Complaint.satisfaction.is_not(None),
                Complaint.closed_at >= start,
                Complaint.closed_at < end,
            )
        )
    ).one()
    total = int(visits[0] or 0) + int(complaints[0] or 0)
    count = int(visits[1] or 0) + int(complaints[1] or 0)
    return None if count == 0 else round(total / count, 4)


def _customers_in(scope: Scope) -> Select[Any]:
    return select(Customer.id).where(scope.clause(Customer.owner_id, Customer.region_id))


async def _complaints(
    session: AsyncSession, scope: Scope, period: Period, zone: str
) -> tuple[int, int]:
    start, end = period.utc_bounds(zone)
    breached = case((breached_clause(utcnow()), 1), else_=0)
    row = (
        await session.execute(
            select(func.count(), func.sum(breached)).where(
                scope.clause(Complaint.owner_id, Complaint.region_id),
                Complaint.received_at >= start,
                Complaint.received_at < end,
            )
        )
    ).one()
    return int(row[0] or 0), int(row[1] or 0)


async def _market_share(
    session: AsyncSession, scope: Scope, period: Period, revenue: Decimal
) -> float | None:
    if scope.kind == TargetScope.REP:
        return None
    stmt = select(func.sum(MarketSize.value)).where(MarketSize.period == period.label)
    if scope.kind == TargetScope.REGION:
        stmt = stmt.where(MarketSize.region_id == scope.id)
    size = await session.scalar(stmt)
    return ratio(revenue, _money(size)) if size else None


def kpi_score(
    settings: department.DepartmentSettings,
    attainment: float | None,
    revenue_growth: float | None,
    market_share: float | None,
    satisfaction: float | None,
) -> float | None:
    """The director's weighted sum. Parts: revenue attainment, growth (1 + growth rate, so
    flat scores 100%), market share and satisfaction ÷ 5, each within 0–cap. Parts that are
    undefined (no target, no base, no market size, no scores) drop out and the remaining
    weights are scaled up to one; null when none is defined."""
    cap = float(settings.kpi_part_cap)
    weights = settings.kpi_weights
    parts = [
        (weights.revenue_attainment, attainment),
        (weights.growth, None if revenue_growth is None else 1 + revenue_growth),
        (weights.market_share, market_share),
        (weights.satisfaction, None if satisfaction is None else satisfaction / 5),
    ]
    known = [(float(w), min(max(p, 0.0), cap)) for w, p in parts if p is not None and w > 0]
    total_weight = sum(w for w, _ in known)
    if not known or total_weight == 0:
        return None
    return round(sum(w * p for w, p in known) / total_weight, 4)


async def summary(session: AsyncSession, scope: Scope, period: Period) -> Summary:
    settings = await department.load(session)
    zone = settings.business_hours.time_zone
    metrics = {m: await _metric_figures(session, m, scope, period, zone) for m in Metric}
    won, lost, cycle = await _won_lost(session, scope, period, zone)
    pipeline, weighted = await _pipeline(session, scope, period)
    satisfaction = await _satisfaction(session, scope, period, zone)
    received, breaches = await _complaints(session, scope, period, zone)
    revenue = metrics[Metric.SIGNED_REVENUE]
    share = await _market_share(session, scope, period, revenue.actual)
    return Summary(
        period=period.label,
        scope=scope.kind,
        scope_id=scope.id,
        metrics=metrics,
        opportunities_won=won,
        opportunities_lost=lost,
        win_rate=ratio(won, won + lost),
        avg_sales_cycle_days=cycle,
        pipeline_value=pipeline,
        weighted_pipeline=weighted,
        avg_satisfaction=satisfaction,
        complaints_received=received,
        sla_breaches=breaches,
        market_share=share,
        kpi_score=kpi_score(
            settings, revenue.attainment, revenue.growth_vs_previous, share, satisfaction
        ),
    )


async def resolve_scope(
    session: AsyncSession, actor: Actor, kind: TargetScope | None, scope_id: uuid.UUID | None
) -> Scope:
    """The scope asked for, if the caller may read it: the director anything, a manager their
    region and its reps, a rep themselves. Default: the caller's own widest scope."""
    if kind is None:
        if actor.is_director:
            kind = TargetScope.COMPANY
        elif actor.is_manager:
            kind, scope_id = TargetScope.REGION, actor.region_id
        else:
            kind, scope_id = TargetScope.REP, actor.id
    if kind == TargetScope.COMPANY:
        if scope_id is not None:
            raise ValidationFailed(["query", "scope_id"], "The company scope takes no scope_id.")
        if not actor.is_director:
            raise Forbidden("Only the director reads the company's figures.")
        return Scope(kind)
    if scope_id is None:
        raise ValidationFailed(["query", "scope_id"], f"A {kind} scope needs scope_id.")
    if kind == TargetScope.REGION:
        if actor.role is Role.REP:
            raise Forbidden("Reps read their own figures only.")
        exists_ = await session.get(Region, scope_id)
        if exists_ is None or (actor.is_manager and scope_id != actor.region_id):
            raise NotFound(f"No region with id {scope_id}.")
        return Scope(kind, scope_id)
    rep = await session.get(User, scope_id)
    visible = (
        rep is not None
        and rep.role == Role.REP
        and (
            actor.is_director
            or (actor.is_manager and rep.region_id == actor.region_id)
            or rep.id == actor.id
        )
    )
    if not visible:
        raise NotFound(f"No rep with id {scope_id}.")
    return Scope(kind, scope_id)
