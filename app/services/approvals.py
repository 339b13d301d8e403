"""The approvals inbox: what waits for the caller's decision, oldest first."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.contracts import Contract, ContractStatus, ReviewStep
from app.models.pipeline import Opportunity
from app.models.quotes import Quote, QuoteStatus
from app.models.types import Money
from app.permissions import Actor

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ApprovalItem(BaseModel):
    kind: Literal["quote", "contract"] = Field(description="What waits: a quote or a contract.")
    id: uuid.UUID
    title: str = Field(description="The opportunity's title (a contract's number before it).")
    opportunity_id: uuid.UUID
    region_id: uuid.UUID | None
    requested_by_id: uuid.UUID | None
    requested_at: datetime | None = Field(
        description="When it reached you: a quote's submission, a contract's review step."
    )
    due_at: datetime | None = Field(
        default=None, description="A contract review step's due time (working hours)."
    )
    amount: Money
    discount_percent: Decimal | None = Field(description="A quote's effective discount.")
    approver_role: str
    url: str


async def inbox(session: AsyncSession, actor: Actor) -> list[ApprovalItem]:
    """Quotes and contracts waiting for the caller's decision, oldest first."""
    items = await _quotes(session, actor) + await _contracts(session, actor)
    return sorted(items, key=lambda item: (item.requested_at or _EPOCH, str(item.id)))


async def _quotes(session: AsyncSession, actor: Actor) -> list[ApprovalItem]:
    """Quotes pending approval that the caller may decide: the director those above the
    managers' limit (and any other), a manager those of their region within it."""
    if not (actor.is_director or actor.is_manager):
        return []
    stmt = (
        select(Quote, Opportunity)
        .join(Opportunity, Opportunity.id == Quote.opportunity_id)
        .where(Quote.status == QuoteStatus.PENDING_APPROVAL, Opportunity.deleted_at.is_(None))
        .order_by(Quote.submitted_at, Quote.id)
    )
    if actor.is_manager:
        stmt = stmt.where(
            Opportunity.region_id == actor.region_id, Quote.approver_role == "regional_manager"
        )
    rows = (await session.execute(stmt)).all()
    return [
        ApprovalItem(
            kind="quote",
            id=quote.id,
            title=opp.title,
            opportunity_id=opp.id,
            region_id=opp.region_id,
            requested_by_id=quote.submitted_by_id,
            requested_at=quote.submitted_at,
            amount=quote.total,
            discount_percent=quote.discount_percent,
            approver_role=quote.approver_role or "",
            url=f"/api/v1/quotes/{quote.id}",
        )
        for quote, opp in rows
    ]


async def _contracts(session: AsyncSession, actor: Actor) -> list[ApprovalItem]:
    """Contracts under review at the caller's step: a manager's region at the manager step,
    the director's at the director step."""
    if actor.is_director:
        step = Contract.review_step == ReviewStep.DIRECTOR
    elif actor.is_manager:
        step = and_(
            Contract.review_step == ReviewStep.MANAGER, Contract.region_id == actor.region_id
        )
    else:
        return []
    stmt = (
        select(Contract, Opportunity)
        .join(Opportunity, Opportunity.id == Contract.opportunity_id)
        .where(Contract.status == ContractStatus.UNDER_REVIEW, step)
        .order_by(Contract.review_started_at, Contract.id)
    )
    rows = (await session.execute(stmt)).all()
    return [
        ApprovalItem(
            kind="contract",
            id=contract.id,
            title=f"{contract.number} {opp.title}",
            opportunity_id=opp.id,
            region_id=contract.region_id,
            requested_by_id=contract.submitted_by_id,
            requested_at=contract.review_started_at,
            due_at=contract.review_due_at,
            amount=contract.amount,
            discount_percent=None,
            approver_role=(
                "director" if contract.review_step == ReviewStep.DIRECTOR else "regional_manager"
            ),
            url=f"/api/v1/contracts/{contract.id}",
        )
        for contract, opp in rows
    ]
