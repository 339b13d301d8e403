"""Opportunities: the pipeline, its stage moves and history, and their quotes."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Response

from app.deps import IfMatchDep, SessionDep, require
from app.models.pipeline import (
    OpportunityCreate,
    OpportunityRead,
    OpportunityTransition,
    OpportunityUpdate,
    Stage,
)
from app.models.platform import StateChangeRead
from app.models.quotes import QuoteCreate, QuoteRead
from app.models.types import Day
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
from app.services import opportunities as service
from app.services import quotes as quote_service

router = api_router("/opportunities", "opportunities")
Reader = Annotated[Actor, Depends(require(Permission.PIPELINE_READ))]
Writer = Annotated[Actor, Depends(require(Permission.PIPELINE_WRITE))]
Deleter = Annotated[Actor, Depends(require(Permission.PIPELINE_DELETE))]


class OpportunityPage(Page[OpportunityRead]):
    pass


class StateChangePage(Page[StateChangeRead]):
    pass


class QuotePage(Page[QuoteRead]):
    pass


async def _answer(session: SessionDep, opp: object, response: Response) -> OpportunityRead:
    read = await service.to_read(session, opp)  # type: ignore[arg-type]
    with_etag(response, read.version, read.unversioned())
    return read


@router.get("", summary="List opportunities in your scope")
async def opportunities_list(
    session: SessionDep,
    actor: Reader,
    stage: Stage | None = None,
    owner_id: uuid.UUID | None = None,
    region_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    expected_close_from: Day | None = None,
    expected_close_to: Day | None = None,
    q: Search = None,
    sort: Literal[
        "created_at",
        "-created_at",
        "updated_at",
        "-updated_at",
        "amount",
        "-amount",
        "expected_close_date",
        "-expected_close_date",
    ] = "-created_at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> OpportunityPage:
    items, next_cursor = await service.list_opportunities(
        session,
        actor,
        stage=stage,
        owner_id=owner_id,
        region_id=region_id,
        customer_id=customer_id,
        expected_close_from=expected_close_from,
        expected_close_to=expected_close_to,
        q=q,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )
    return OpportunityPage(items=items, next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    summary="Open an opportunity for a customer",
    responses=created_with_headers(),
)
async def opportunities_create(
    session: SessionDep, actor: Writer, body: OpportunityCreate, response: Response
) -> OpportunityRead:
    opp = await service.create_opportunity(session, actor, body)
    read = await service.to_read(session, opp)
    created(response, f"/api/v1/opportunities/{opp.id}", read.version, read.unversioned())
    return read


@router.get("/{opportunity_id}", summary="Get an opportunity", responses=ok_with_etag())
async def opportunities_get(
    session: SessionDep, actor: Reader, opportunity_id: uuid.UUID, response: Response
) -> OpportunityRead:
    opp = await service.get_opportunity(session, actor, opportunity_id, shown=True)
    return await _answer(session, opp, response)


@router.patch(
    "/{opportunity_id}", summary="Change an open opportunity's details", responses=ok_with_etag()
)
async def opportunities_update(
    session: SessionDep,
    actor: Writer,
    opportunity_id: uuid.UUID,
    body: OpportunityUpdate,
    expected: IfMatchDep,
    response: Response,
) -> OpportunityRead:
    opp = await service.update_opportunity(session, actor, opportunity_id, body, expected)
    return await _answer(session, opp, response)


@router.delete(
    "/{opportunity_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an opportunity (kept for audit and reports)",
)
async def opportunities_delete(
    session: SessionDep, actor: Deleter, opportunity_id: uuid.UUID, expected: IfMatchDep
) -> None:
    await service.delete_opportunity(session, actor, opportunity_id, expected)


@router.get("/{opportunity_id}/transitions", summary="The stage moves you may make now")
async def opportunities_transitions_list(
    session: SessionDep, actor: Reader, opportunity_id: uuid.UUID
) -> list[service.OpportunityMoveOption]:
    opp = await service.get_opportunity(session, actor, opportunity_id)
    return await service.WORKFLOW.options(session, actor, opp)


@router.post(
    "/{opportunity_id}/transitions",
    summary="Move an opportunity to another stage",
    responses=ok_with_etag(errors=(403,)),
)
async def opportunities_transition(
    session: SessionDep,
    actor: Writer,
    opportunity_id: uuid.UUID,
    body: OpportunityTransition,
    expected: IfMatchDep,
    response: Response,
) -> OpportunityRead:
    opp = await service.transition(
        session, actor, opportunity_id, body.to, body.model_dump(exclude={"to"}), expected
    )
    return await _answer(session, opp, response)


@router.get("/{opportunity_id}/history", summary="Every stage change: from, to, who, when, note")
async def opportunities_history(
    session: SessionDep, actor: Reader, opportunity_id: uuid.UUID
) -> StateChangePage:
    changes = await service.history(session, actor, opportunity_id)
    return StateChangePage(
        items=[StateChangeRead.model_validate(c) for c in changes], next_cursor=None
    )


@router.get("/{opportunity_id}/quotes", summary="List an opportunity's quotes")
async def quotes_list(session: SessionDep, actor: Reader, opportunity_id: uuid.UUID) -> QuotePage:
    items = await quote_service.list_quotes(session, actor, opportunity_id)
    return QuotePage(items=items, next_cursor=None)


@router.post(
    "/{opportunity_id}/quotes",
    status_code=201,
    summary="Draft a quote",
    responses=created_with_headers(),
)
async def quotes_create(
    session: SessionDep,
    actor: Writer,
    opportunity_id: uuid.UUID,
    body: QuoteCreate,
    response: Response,
) -> QuoteRead:
    quote = await quote_service.create_quote(session, actor, opportunity_id, body)
    created(response, f"/api/v1/quotes/{quote.id}", quote.version)
    return await quote_service.to_read(session, quote)
