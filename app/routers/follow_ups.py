"""Follow-ups: calls, visits and meetings with customers, planned or done."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Query, Response

from app.answers import page_response
from app.deps import IfMatchDep, SessionDep, require
from app.models.customers import (
    FollowUp,
    FollowUpCreate,
    FollowUpKind,
    FollowUpRead,
    FollowUpStatus,
    FollowUpUpdate,
)
from app.models.types import Timestamp
from app.pagination import Page
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
from app.services import follow_ups as service

router = api_router("/follow-ups", "follow-ups")
Reader = Annotated[Actor, Depends(require(Permission.CUSTOMERS_READ))]
Writer = Annotated[Actor, Depends(require(Permission.CUSTOMERS_WRITE))]


class FollowUpPage(Page[FollowUpRead]):
    pass


@router.get("", summary="List follow-ups of customers in your scope", response_model=FollowUpPage)
async def follow_ups_list(
    session: SessionDep,
    actor: Reader,
    customer_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    kind: FollowUpKind | None = None,
    status: FollowUpStatus | None = None,
    overdue: Annotated[bool | None, Query(description="Planned and past due.")] = None,
    from_: Annotated[
        Timestamp | None, Query(alias="from", description="Occurred or due at or after.")
    ] = None,
    to: Annotated[Timestamp | None, Query(description="Occurred or due before.")] = None,
    sort: Literal[
        "created_at", "-created_at", "updated_at", "-updated_at", "due_at", "-due_at"
    ] = "-created_at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    items, next_cursor = await service.list_follow_ups(
        session,
        actor,
        customer_id=customer_id,
        owner_id=owner_id,
        kind=kind,
        status=status,
        overdue=overdue,
        from_=from_,
        to=to,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )
    return page_response(items, next_cursor)


async def _answer(session: SessionDep, follow_up: FollowUp, response: Response) -> FollowUpRead:
    read = await service.to_read(session, follow_up)
    with_etag(response, read.version, read.unversioned())
    return read


@router.post(
    "", status_code=201, summary="Log or plan a follow-up", responses=created_with_headers()
)
async def follow_ups_create(
    session: SessionDep, actor: Writer, body: FollowUpCreate, response: Response
) -> FollowUpRead:
    follow_up = await service.create_follow_up(session, actor, body)
    read = await service.to_read(session, follow_up)
    created(response, f"/api/v1/follow-ups/{follow_up.id}", read.version, read.unversioned())
    return read


@router.get("/{follow_up_id}", summary="Get a follow-up", responses=ok_with_etag())
async def follow_ups_get(
    session: SessionDep, actor: Reader, follow_up_id: uuid.UUID, response: Response
) -> FollowUpRead:
    follow_up = await service.get_follow_up(session, actor, follow_up_id)
    return await _answer(session, follow_up, response)


@router.patch(
    "/{follow_up_id}", summary="Change a follow-up (e.g. mark it done)", responses=ok_with_etag()
)
async def follow_ups_update(
    session: SessionDep,
    actor: Writer,
    follow_up_id: uuid.UUID,
    body: FollowUpUpdate,
    expected: IfMatchDep,
    response: Response,
) -> FollowUpRead:
    follow_up = await service.update_follow_up(session, actor, follow_up_id, body, expected)
    return await _answer(session, follow_up, response)


@router.delete(
    "/{follow_up_id}", status_code=204, response_class=Response, summary="Delete a follow-up"
)
async def follow_ups_delete(
    session: SessionDep, actor: Writer, follow_up_id: uuid.UUID, expected: IfMatchDep
) -> None:
    await service.delete_follow_up(session, actor, follow_up_id, expected)
