"""Performance reports: summary, leaderboard, funnel, forecast, commissions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query

from app.db import autocommit_reads
from app.deps import SessionDep, require
from app.errors import Forbidden, NotFound, ValidationFailed, error_responses
from app.models.performance import TargetScope
from app.periods import PERIOD_PATTERN, Period, parse_period, period_containing
from app.permissions import Actor, Permission
from app.routers.common import ReportRoute, api_router
from app.services import department, reports
from app.services import performance as service

# A rep asking for others' figures is refused; a region or rep out of reach is not found.
SCOPE_ERRORS = error_responses(403, 404)
router = api_router("/performance", "performance", route_class=ReportRoute)
Reader = Annotated[Actor, Depends(require(Permission.PERFORMANCE_READ))]
PeriodParam = Annotated[
    str | None,
    Query(pattern=PERIOD_PATTERN, description="2026, 2026-Q3 or 2026-07; default: this quarter."),
]
ScopeParam = Annotated[TargetScope | None, Query(description="Default: your own widest scope.")]


async def _period(session: SessionDep, label: str | None) -> Period:
    if label is not None:
        return parse_period(label)
    today = department.today(await department.load(session))
    return period_containing(today, parse_period("2000-Q1"))


@router.get(
    "/summary",
    summary="Actuals, targets, attainment, growth and the KPI score",
    responses=SCOPE_ERRORS,
)
@autocommit_reads
async def performance_summary(
    session: SessionDep,
    actor: Reader,
    period: PeriodParam = None,
    scope: ScopeParam = None,
    scope_id: uuid.UUID | None = None,
) -> service.Summary:
    resolved = await service.resolve_scope(session, actor, scope, scope_id)
    return await service.summary(session, resolved, await _period(session, period))


@router.get(
    "/leaderboard",
    summary="Reps of a region, or the regions, best KPI score first",
    responses=SCOPE_ERRORS,
)
@autocommit_reads
async def performance_leaderboard(
    session: SessionDep,
    actor: Reader,
    period: PeriodParam = None,
    region_id: uuid.UUID | None = None,
) -> reports.Leaderboard:
    if actor.is_manager:
        region_id = region_id or actor.region_id
        if region_id != actor.region_id:
            raise NotFound(f"No region with id {region_id}.")
    elif not actor.is_director:
        raise Forbidden("Leaderboards are for managers and the director.")
    return await reports.leaderboard(session, await _period(session, period), region_id)


@router.get(
    "/funnel",
    summary="Stage counts and amounts, conversion and days in stage",
    responses=SCOPE_ERRORS,
)
async def performance_funnel(
    session: SessionDep,
    actor: Reader,
    period: PeriodParam = None,
    scope: ScopeParam = None,
    scope_id: uuid.UUID | None = None,
) -> reports.Funnel:
    resolved = await service.resolve_scope(session, actor, scope, scope_id)
    return await reports.funnel(session, resolved, await _period(session, period))


@router.get(
    "/forecast", summary="Weighted pipeline by expected close month", responses=SCOPE_ERRORS
)
async def performance_forecast(
    session: SessionDep,
    actor: Reader,
    scope: ScopeParam = None,
    scope_id: uuid.UUID | None = None,
) -> reports.Forecast:
    resolved = await service.resolve_scope(session, actor, scope, scope_id)
    return await reports.forecast(session, resolved)


@router.get(
    "/commissions",
    summary="Commission per rep, with the working shown",
    responses=error_responses(404),
)
async def performance_commissions(
    session: SessionDep,
    actor: Reader,
    period: PeriodParam = None,
    region_id: uuid.UUID | None = None,
) -> reports.Commissions:
    rep_id = None
    if actor.is_manager:
        region_id = region_id or actor.region_id
        if region_id != actor.region_id:
            raise NotFound(f"No region with id {region_id}.")
    elif not actor.is_director:
        if region_id is not None:
            raise ValidationFailed(["query", "region_id"], "Reps see their own commission only.")
        rep_id = actor.id
    return await reports.commissions(session, await _period(session, period), region_id, rep_id)
