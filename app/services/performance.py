"""The performance summary and leaderboard standings: actuals against targets, attainment,
growth and the KPI score, from the figures of ``app.services.figures``; and whose figures a
caller may read.

A summary is a group of one scope; the leaderboard asks for only the figures it shows, for
all its scopes at once. Either sends its figures' statements in one batch and sets nothing for
its transaction (unlike ``services.sql.for_reports``), so their routes run without BEGIN and
COMMIT on PostgreSQL (``app.db.autocommit_reads``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Forbidden, NotFound, ValidationFailed
from app.models.people import Region, Role, User
from app.models.performance import Metric, TargetScope
from app.models.types import Money
from app.periods import Period
from app.permissions import Actor
from app.services import department, figures
from app.services.figure_scopes import Batch, Group, Key, Scope, growth, money, ratio


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


def _metric_figures(actuals: list[Decimal] | None, target: Decimal | None) -> MetricFigures:
    """From the actuals of the period, the one before and the year before."""
    now, previous, last_year = actuals or [Decimal("0.00")] * 3
    return MetricFigures(
        actual=now,
        target=target,
        attainment=ratio(now, target),
        growth_vs_previous=growth(now, previous),
        growth_vs_last_year=growth(now, last_year),
    )


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


def _share_and_score(
    settings: department.DepartmentSettings,
    revenue: MetricFigures,
    market_size: Any,
    satisfaction: float | None,
) -> tuple[float | None, float | None]:
    """(market share, KPI score) of one scope."""
    share = ratio(revenue.actual, money(market_size)) if market_size else None
    score = kpi_score(settings, revenue.attainment, revenue.growth_vs_previous, share, satisfaction)
    return share, score


async def summaries(session: AsyncSession, group: Group, period: Period) -> dict[Key, Summary]:
    settings = await department.load(session)
    zone = settings.business_hours.time_zone
    periods = (period, period.previous(), period.year_before())
    batch = Batch(session, group)
    contracts = figures.contract_actuals(batch, periods, zone)
    collected = figures.collected_payments(batch, periods)
    goals = figures.targets(batch, period)
    closed = figures.won_lost(batch, period, zone)
    pipeline = figures.pipeline(batch, period)
    scores = figures.satisfaction(batch, period, zone)
    complaints = figures.complaints(batch, period, zone)
    sizes = figures.market_sizes(batch, period)
    await batch.run()
    revenue, customers = contracts.value
    actuals = {
        Metric.SIGNED_REVENUE: revenue,
        Metric.COLLECTED_PAYMENTS: collected.value,
        Metric.NEW_CUSTOMERS: customers,
    }
    result = {}
    for key in group.keys:
        metrics = {
            m: _metric_figures(actuals[m].get(key), goals.value.get((key, m))) for m in Metric
        }
        won, lost, cycle = closed.value.get(key, (0, 0, None))
        value, weighted = pipeline.value.get(key, (money(0), money(0)))
        received, breaches = complaints.value.get(key, (0, 0))
        satisfaction = scores.value.get(key)
        share, score = _share_and_score(
            settings, metrics[Metric.SIGNED_REVENUE], sizes.value.get(key), satisfaction
        )
        result[key] = Summary(
            period=period.label,
            scope=group.kind,
            scope_id=key,
            metrics=metrics,
            opportunities_won=won,
            opportunities_lost=lost,
            win_rate=ratio(won, won + lost),
            avg_sales_cycle_days=cycle,
            pipeline_value=value,
            weighted_pipeline=weighted,
            avg_satisfaction=satisfaction,
            complaints_received=received,
            sla_breaches=breaches,
            market_share=share,
            kpi_score=score,
        )
    return result


async def summary(session: AsyncSession, scope: Scope, period: Period) -> Summary:
    return (await summaries(session, Group.of(scope), period))[scope.id]


@dataclass(frozen=True)
class Standing:
    """The part of a summary a leaderboard shows."""

    kpi_score: float | None
    signed_revenue: Decimal
    revenue_attainment: float | None
    collected_payments: Decimal
    win_rate: float | None


async def standings(session: AsyncSession, group: Group, period: Period) -> dict[Key, Standing]:
    """Each scope's KPI score and headline figures: what ``summaries`` gives for them, from only
    the queries they need."""
    if not group.keys:
        return {}
    settings = await department.load(session)
    zone = settings.business_hours.time_zone
    batch = Batch(session, group)
    revenue = figures.signed_revenue(batch, (period, period.previous()), zone)
    collected = figures.collected_payments(batch, (period,))
    goals = figures.targets(batch, period)
    closed = figures.won_lost(batch, period, zone)
    scores = figures.satisfaction(batch, period, zone)
    sizes = figures.market_sizes(batch, period)
    await batch.run()
    result = {}
    for key in group.keys:
        # The year before is not part of the score: any base will do.
        now, previous = revenue.value.get(key, [money(0)] * 2)
        target = goals.value.get((key, Metric.SIGNED_REVENUE))
        revenue_of_key = _metric_figures([now, previous, now], target)
        _, score = _share_and_score(
            settings, revenue_of_key, sizes.value.get(key), scores.value.get(key)
        )
        won, lost, _ = closed.value.get(key, (0, 0, None))
        result[key] = Standing(
            kpi_score=score,
            signed_revenue=now,
            revenue_attainment=revenue_of_key.attainment,
            collected_payments=collected.value.get(key, [money(0)])[0],
            win_rate=ratio(won, won + lost),
        )
    return result


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
        # A manager's own region exists (their user row refers to it); any other is not
        # theirs to read. Only the director's choice needs looking up.
        if actor.is_manager:
            found = scope_id == actor.region_id
        else:
            found = await session.get(Region, scope_id) is not None
        if not found:
            raise NotFound(f"No region with id {scope_id}.")
        return Scope(kind, scope_id)
    if scope_id == actor.id and actor.role is Role.REP:
        return Scope(kind, scope_id)  # a rep's own figures (the caller is read fresh)
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
