"""Sales targets per period, scope and metric; market sizes per region and period."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.errors import Conflict, Forbidden, ValidationFailed
from app.models.people import Region, Role, User
from app.models.performance import (
    MarketSize,
    MarketSizeCreate,
    MarketSizeRead,
    Metric,
    Target,
    TargetCreate,
    TargetRead,
    TargetScope,
)
from app.pagination import paginate
from app.permissions import Actor
from app.services.common import ensure_version, get_visible

TARGET_SORTS = {"created_at": Target.created_at, "period": Target.period}
MARKET_SORTS = {"created_at": MarketSize.created_at, "period": MarketSize.period}


def _visible_targets(actor: Actor) -> ColumnElement[bool]:
    if actor.is_director:
        return true()
    if actor.is_manager:
        return or_(Target.scope == TargetScope.COMPANY, Target.region_id == actor.region_id)
    return and_(Target.scope == TargetScope.REP, Target.scope_id == actor.id)


async def to_read(session: AsyncSession, target: Target) -> TargetRead:
    """The target with its allocation: how much of it the children's targets cover."""
    children: Select[Any] | None = None
    if target.scope == TargetScope.COMPANY:
        children = select(func.sum(Target.value)).where(Target.scope == TargetScope.REGION)
    elif target.scope == TargetScope.REGION:
        children = select(func.sum(Target.value)).where(
            Target.scope == TargetScope.REP, Target.region_id == target.scope_id
        )
    allocated = Decimal("0.00")
    if children is not None:
        total = await session.scalar(
            children.where(Target.period == target.period, Target.metric == target.metric)
        )
        allocated = Decimal(str(total or 0)).quantize(Decimal("0.01"))
    allocation = (
        float(allocated / target.value) if children is not None and target.value > 0 else None
    )
    return TargetRead.model_validate(
        {**target.model_dump(), "allocated": allocated, "allocation": allocation}
    )


async def list_targets(
    session: AsyncSession,
    actor: Actor,
    *,
    period: str | None,
    scope: TargetScope | None,
    scope_id: uuid.UUID | None,
    metric: Metric | None,
    sort: str,
    cursor: str | None,
    limit: int,
) -> tuple[list[TargetRead], str | None]:
    stmt: Select[Any] = select(Target).where(_visible_targets(actor))
    for column, value in (
        (Target.period, period),
        (Target.scope, scope),
        (Target.scope_id, scope_id),
        (Target.metric, metric),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    rows, next_cursor = await paginate(
        session,
        stmt,
        sort=sort,
        sortable=TARGET_SORTS,
        id_column=Target.id,
        cursor=cursor,
        limit=limit,
    )
    return [await to_read(session, row) for row in rows], next_cursor


async def get_target(session: AsyncSession, actor: Actor, target_id: uuid.UUID) -> Target:
    return await get_visible(session, Target, target_id, _visible_targets(actor), name="target")


async def _region_of_scope(session: AsyncSession, data: TargetCreate) -> uuid.UUID | None:
    """Check the scope names what it should; the region the target belongs to."""
    if data.scope == TargetScope.COMPANY:
        if data.scope_id is not None:
            raise ValidationFailed(["body", "scope_id"], "A company target names no scope_id.")
        return None
    if data.scope_id is None:
        raise ValidationFailed(["body", "scope_id"], f"A {data.scope} target needs scope_id.")
    if data.scope == TargetScope.REGION:
        if await session.get(Region, data.scope_id) is None:
            raise ValidationFailed(["body", "scope_id"], "No such region.")
        return data.scope_id
    rep = await session.get(User, data.scope_id)
    if rep is None or rep.role != Role.REP:
        raise ValidationFailed(["body", "scope_id"], "No such rep.")
    return rep.region_id


def _may_set(actor: Actor, scope: str, region_id: uuid.UUID | None) -> None:
    if actor.is_director:
        return
    if actor.is_manager and scope == TargetScope.REP and region_id == actor.region_id:
        return
    raise Forbidden(
        "The director sets company and region targets; a manager, those of the "
        "reps of their region."
    )


# Metrics that count things: their targets are whole numbers (2.5 new customers is no goal).
_COUNT_METRICS = frozenset({Metric.NEW_CUSTOMERS})


def _check_value(metric: str, value: Decimal) -> None:
    """422 on ``value`` when ``metric`` counts things and ``value`` is not a whole number."""
    if metric in _COUNT_METRICS and value != value.to_integral_value():
        raise ValidationFailed(
            ["body", "value"], f"A {metric} target is a whole number ({value} is not)."
        )


async def create_target(session: AsyncSession, actor: Actor, data: TargetCreate) -> Target:
    _check_value(data.metric, data.value)
    region_id = await _region_of_scope(session, data)
    _may_set(actor, data.scope, region_id)
    scope_match = (
        Target.scope_id.is_(None) if data.scope_id is None else Target.scope_id == data.scope_id
    )
    existing = (
        await session.scalars(
            select(Target.id).where(
                Target.period == data.period,
                Target.scope == data.scope,
                scope_match,
                Target.metric == data.metric,
            )
        )
    ).first()
    if existing is not None:
        raise Conflict(
            "This target is set already; change its value instead.",
            reason="duplicate_target",
            existing_id=str(existing),
        )
    target = Target(**data.model_dump(), region_id=region_id)
    session.add(target)
    await session.flush()
    events.record(session, "target.set", target, await to_read(session, target))
    return target


async def update_target(
    session: AsyncSession,
    actor: Actor,
    target_id: uuid.UUID,
    value: Decimal,
    expected: int | None,
) -> Target:
    target = await get_target(session, actor, target_id)
    ensure_version(target, expected)
    _may_set(actor, target.scope, target.region_id)
    _check_value(target.metric, value)
    target.value = value
    await session.flush()
    events.record(session, "target.set", target, await to_read(session, target))
    return target


async def delete_target(
    session: AsyncSession, actor: Actor, target_id: uuid.UUID, expected: int | None
) -> None:
    target = await get_target(session, actor, target_id)
    ensure_version(target, expected)
    _may_set(actor, target.scope, target.region_id)
    events.record(session, "target.deleted", target, {"id": str(target.id)})
    await session.delete(target)
    await session.flush()


def _visible_market_sizes(actor: Actor) -> ColumnElement[bool]:
    return true() if actor.is_director else MarketSize.region_id == actor.region_id


async def list_market_sizes(
    session: AsyncSession,
    actor: Actor,
    *,
    region_id: uuid.UUID | None,
    period: str | None,
    sort: str,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[MarketSize], str | None]:
    stmt: Select[Any] = select(MarketSize).where(_visible_market_sizes(actor))
    if region_id is not None:
        stmt = stmt.where(MarketSize.region_id == region_id)
    if period is not None:
        stmt = stmt.where(MarketSize.period == period)
    return await paginate(
        session,
        stmt,
        sort=sort,
        sortable=MARKET_SORTS,
        id_column=MarketSize.id,
        cursor=cursor,
        limit=limit,
    )


async def set_market_size(session: AsyncSession, data: MarketSizeCreate) -> tuple[MarketSize, bool]:
    """Create or replace the market size of a region and period; True when created."""
    if await session.get(Region, data.region_id) is None:
        raise ValidationFailed(["body", "region_id"], "No such region.")
    market = (
        await session.scalars(
            select(MarketSize).where(
                MarketSize.region_id == data.region_id, MarketSize.period == data.period
            )
        )
    ).first()
    created = market is None
    if market is None:
        market = MarketSize(**data.model_dump())
        session.add(market)
    else:
        market.value = data.value
    await session.flush()
    events.record(session, "market_size.set", market, MarketSizeRead.model_validate(market))
    return market, created
