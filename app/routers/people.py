"""Regions and users."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Response

from app.deps import ActorDep, IfMatchDep, SessionDep, require
from app.models.people import (
    RegionCreate,
    RegionRead,
    RegionUpdate,
    Role,
    UserCreate,
    UserRead,
    UserUpdate,
)
from app.pagination import Page
from app.permissions import Actor, Permission
from app.routers.common import (
    Cursor,
    Limit,
    Search,
    api_router,
    created,
    created_with_headers,
    ok_with_etag,
    with_etag,
)
from app.services import people

regions = api_router("/regions", "regions")
users = api_router("/users", "users")

Director = Annotated[Actor, Depends(require(Permission.REGIONS_MANAGE))]
UserReader = Annotated[Actor, Depends(require(Permission.USERS_READ))]
UserManager = Annotated[Actor, Depends(require(Permission.USERS_MANAGE))]


class RegionPage(Page[RegionRead]):
    pass


class UserPage(Page[UserRead]):
    pass


@regions.get("", summary="List regions")
async def regions_list(
    session: SessionDep,
    _: ActorDep,
    sort: Literal["created_at", "-created_at", "name", "-name"] = "name",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> RegionPage:
    rows, next_cursor = await people.list_regions(session, sort, cursor, limit)
    return RegionPage(items=[RegionRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@regions.post(
    "", status_code=201, summary="Create a region (director)", responses=created_with_headers()
)
async def regions_create(
    session: SessionDep, _: Director, body: RegionCreate, response: Response
) -> RegionRead:
    region = await people.create_region(session, body)
    created(response, f"/api/v1/regions/{region.id}", region.version)
    return RegionRead.model_validate(region)


@regions.get("/{region_id}", summary="Get a region", responses=ok_with_etag())
async def regions_get(
    session: SessionDep, _: ActorDep, region_id: uuid.UUID, response: Response
) -> RegionRead:
    region = await people.get_region(session, region_id)
    with_etag(response, region.version)
    return RegionRead.model_validate(region)


@regions.patch("/{region_id}", summary="Rename a region (director)", responses=ok_with_etag())
async def regions_update(
    session: SessionDep,
    _: Director,
    region_id: uuid.UUID,
    body: RegionUpdate,
    expected: IfMatchDep,
    response: Response,
) -> RegionRead:
    region = await people.update_region(session, region_id, body, expected)
    with_etag(response, region.version)
    return RegionRead.model_validate(region)


@regions.delete(
    "/{region_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an unused region (director)",
)
async def regions_delete(
    session: SessionDep, _: Director, region_id: uuid.UUID, expected: IfMatchDep
) -> None:
    await people.delete_region(session, region_id, expected)


@users.get("", summary="List users (director: all; manager: own region)")
async def users_list(
    session: SessionDep,
    actor: UserReader,
    role: Role | None = None,
    region_id: uuid.UUID | None = None,
    is_active: bool | None = None,
    q: Search = None,
    sort: Literal["created_at", "-created_at", "email", "-email", "full_name", "-full_name"] = (
        "full_name"
    ),
    cursor: Cursor = None,
    limit: Limit = 50,
) -> UserPage:
    rows, next_cursor = await people.list_users(
        session,
        actor,
        role=role,
        region_id=region_id,
        is_active=is_active,
        q=q,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )
    return UserPage(items=[UserRead.model_validate(u) for u in rows], next_cursor=next_cursor)


@users.post(
    "",
    status_code=201,
    summary="Create a user (director; managers: reps of their region)",
    responses=created_with_headers(),
)
async def users_create(
    session: SessionDep, actor: UserManager, body: UserCreate, response: Response
) -> UserRead:
    user = await people.create_user(session, actor, body)
    created(response, f"/api/v1/users/{user.id}", user.version)
    return UserRead.model_validate(user)


@users.get("/{user_id}", summary="Get a user", responses=ok_with_etag())
async def users_get(
    session: SessionDep, actor: UserReader, user_id: uuid.UUID, response: Response
) -> UserRead:
    user = await people.get_user(session, actor, user_id)
    with_etag(response, user.version)
    return UserRead.model_validate(user)


@users.patch("/{user_id}", summary="Change a user", responses=ok_with_etag())
async def users_update(
    session: SessionDep,
    actor: UserManager,
    user_id: uuid.UUID,
    body: UserUpdate,
    expected: IfMatchDep,
    response: Response,
) -> UserRead:
    user = await people.update_user(session, actor, user_id, body, expected)
    with_etag(response, user.version)
    return UserRead.model_validate(user)
