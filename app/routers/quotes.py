"""Quotes and their approval; the approvals inbox."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Response

from app.deps import IfMatchDep, SessionDep, require
from app.models.quotes import QuoteRead, QuoteTransition, QuoteUpdate
from app.pagination import Page
from app.permissions import Actor, Permission
from app.routers.common import api_router, ok_with_etag, with_etag
from app.services import approvals as approval_service
from app.services import quotes as service
from app.services.approvals import ApprovalItem

router = api_router("/quotes", "quotes")
approvals = api_router("/approvals", "approvals")
Reader = Annotated[Actor, Depends(require(Permission.PIPELINE_READ))]
Writer = Annotated[Actor, Depends(require(Permission.PIPELINE_WRITE))]


class ApprovalPage(Page[ApprovalItem]):
    pass


async def _answer(session: SessionDep, quote: object, response: Response) -> QuoteRead:
    read = await service.to_read(session, quote)  # type: ignore[arg-type]
    with_etag(response, read.version)
    return read


@router.get("/{quote_id}", summary="Get a quote", responses=ok_with_etag())
async def quotes_get(
    session: SessionDep, actor: Reader, quote_id: uuid.UUID, response: Response
) -> QuoteRead:
    return await _answer(session, await service.get_quote(session, actor, quote_id), response)


@router.patch(
    "/{quote_id}",
    summary="Change a draft quote (lines are replaced whole)",
    responses=ok_with_etag(),
)
async def quotes_update(
    session: SessionDep,
    actor: Writer,
    quote_id: uuid.UUID,
    body: QuoteUpdate,
    expected: IfMatchDep,
    response: Response,
) -> QuoteRead:
    quote = await service.update_quote(session, actor, quote_id, body, expected)
    return await _answer(session, quote, response)


@router.get("/{quote_id}/transitions", summary="The status moves you may make now")
async def quotes_transitions_list(
    session: SessionDep, actor: Reader, quote_id: uuid.UUID
) -> list[service.QuoteMoveOption]:
    quote = await service.get_quote(session, actor, quote_id)
    return await service.WORKFLOW.options(session, actor, quote)


@router.post(
    "/{quote_id}/transitions",
    summary="Submit, approve, reject, send, accept, decline or expire a quote",
    responses=ok_with_etag(errors=(403,)),
)
async def quotes_transition(
    session: SessionDep,
    actor: Writer,
    quote_id: uuid.UUID,
    body: QuoteTransition,
    expected: IfMatchDep,
    response: Response,
) -> QuoteRead:
    quote = await service.transition(
        session, actor, quote_id, body.to, body.model_dump(exclude={"to"}), expected
    )
    return await _answer(session, quote, response)


@approvals.get("", summary="What waits for your approval, oldest first")
async def approvals_list(
    session: SessionDep, actor: Annotated[Actor, Depends(require(Permission.APPROVALS_READ))]
) -> ApprovalPage:
    return ApprovalPage(items=await approval_service.inbox(session, actor), next_cursor=None)
