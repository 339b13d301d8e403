"""Targets and market sizes."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Query, Response

from app.deps import IfMatchDep, SessionDep, require
from app.models.performance import (
    MarketSizeCreate,
    MarketSizeRead,
    Metric,
    TargetCreate,
    TargetRead,
    TargetScope,
    TargetUpdate,
)
from app.pagination import Page
from app.periods import PERIOD_PATTERN
from app.permissions import Actor, Permission
from app.routers.common import (
    Cursor,
    Limit,
    api_router,
    created,
    created_with_headers,
    ok_with_etag,
    with_etag,
)
from app.services import targets as service

targets = api_router("/targets", "targets")
market_sizes = api_router("/market-sizes", "market-sizes")
Reader = Annotated[Actor, Depends(require(Permission.TARGETS_READ))]
Setter = Annotated[Actor, Depends(require(Permission.TARGETS_MANAGE))]
Director = Annotated[Actor, Depends(require(Permission.MARKET_SIZES_MANAGE))]
MarketReader = Annotated[Actor, Depends(require(Permission.TARGETS_MANAGE))]
PeriodQuery = Annotated[
    str | None, Query(pattern=PERIOD_PATTERN, description="2026, 2026-Q3 or 2026-07.")
]


class TargetPage(Page[TargetRead]):
    pass


class MarketSizePage(Page[MarketSizeRead]):
    pass


@targets.get("", summary="List targets you may see, with their allocation")
async def targets_list(
    session: SessionDep,
    actor: Reader,
    period: PeriodQuery = None,
    scope: TargetScope | None = None,
    scope_id: uuid.UUID | None = None,
    metric: Metric | None = None,
    sort: Literal["created_at", "-created_at", "period", "-period"] = "-created_at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> TargetPage:
    items, next_cursor = await service.list_targets(
        session,
        actor,
        period=period,
        scope=scope,
        scope_id=scope_id,
        metric=metric,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )
    return TargetPage(items=items, next_cursor=next_cursor)


@targets.post("", status_code=201, summary="Set a target", responses=created_with_headers())
async def targets_create(
    session: SessionDep, actor: Setter, body: TargetCreate, response: Response
) -> TargetRead:
    target = await service.create_target(session, actor, body)
    read = await service.to_read(session, target)
    created(response, f"/api/v1/targets/{target.id}", read.version, read.unversioned())
    return read


@targets.get("/{target_id}", summary="Get a target", responses=ok_with_etag())
async def targets_get(
    session: SessionDep, actor: Reader, target_id: uuid.UUID, response: Response
) -> TargetRead:
    read = await service.to_read(session, await service.get_target(session, actor, target_id))
    with_etag(response, read.version, read.unversioned())
    return read


@targets.patch("/{target_id}", summary="Change a target's value", responses=ok_with_etag())
async def targets_update(
    session: SessionDep,
    actor: Setter,
    target_id: uuid.UUID,
    body: TargetUpdate,
    expected: IfMatchDep,
    response: Response,
) -> TargetRead:
    target = await service.update_target(session, actor, target_id, body.value, expected)
    read = await service.to_read(session, target)
    with_etag(response, read.version, read.unversioned())
    return read


@targets.delete("/{target_id}", status_code=204, response_class=Response, summary="Remove a target")
async def targets_delete(
    session: SessionDep, actor: Setter, target_id: uuid.UUID, expected: IfMatchDep
) -> None:
    await service.delete_target(session, actor, target_id, expected)


@market_sizes.get("", summary="Market sizes (director; managers: their region)")
async def market_sizes_list(
    session: SessionDep,
    actor: MarketReader,
    region_id: uuid.UUID | None = None,
    period: PeriodQuery = None,
    sort: Literal["created_at", "-created_at", "period", "-period"] = "-period",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> MarketSizePage:
    rows, next_cursor = await service.list_market_sizes(
        session,
        actor,
        region_id=region_id,
        period=period,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )
    return MarketSizePage(
        items=[MarketSizeRead.model_validate(m) for m in rows], next_cursor=next_cursor
    )


@market_sizes.post(
    "",
    summary="Set a region's market size for a period (director)",
    responses={**created_with_headers(), **ok_with_etag("Replaced")},
)
async def market_sizes_set(
    session: SessionDep, _: Director, body: MarketSizeCreate, response: Response
) -> MarketSizeRead:
    market, was_created = await service.set_market_size(session, body)
    if was_created:
        response.status_code = 201
        created(response, f"/api/v1/market-sizes?region_id={market.region_id}", market.version)
    else:
        with_etag(response, market.version)
    return MarketSizeRead.model_validate(market)
