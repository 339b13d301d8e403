"""The approvals inbox: what waits for the caller's decision, oldest first."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.pipeline import Opportunity
from app.models.quotes import Quote, QuoteStatus
from app.models.types import Money
from app.permissions import Actor


class ApprovalItem(BaseModel):
    kind: Literal["quote"] = Field(description="What waits: a quote (contracts come later).")
    id: uuid.UUID
    title: str = Field(description="The opportunity's title.")
    opportunity_id: uuid.UUID
    region_id: uuid.UUID | None
    requested_by_id: uuid.UUID | None
    requested_at: datetime | None
    amount: Money
    discount_percent: Decimal
    approver_role: str
    url: str


async def inbox(session: AsyncSession, actor: Actor) -> list[ApprovalItem]:
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
