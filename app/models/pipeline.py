"""Products and opportunities: the sales pipeline."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise

import pydantic
from pydantic import StrictBool, StrictInt
from sqlalchemy import Index, String, Text, text
from sqlmodel import Field

from app.models.base import InputSchema, RecordBase, ResourceRead, scoped_indexes
from app.models.types import Day, Money, MoneyType, Timestamp, UTCDateTime


class Stage(StrEnum):
    LEAD = "lead"
    CONTACTED = "contacted"
    NEEDS_ANALYSIS = "needs_analysis"
    PROPOSAL = "proposal"
    NEGOTIATION = "negotiation"
    WON = "won"
    LOST = "lost"


OPEN_STAGES: tuple[Stage, ...] = (
    Stage.LEAD,
    Stage.CONTACTED,
    Stage.NEEDS_ANALYSIS,
    Stage.PROPOSAL,
    Stage.NEGOTIATION,
)
# The sales funnel: each stage and the one after it.
FUNNEL_STAGES: tuple[Stage, ...] = (*OPEN_STAGES, Stage.WON)
NEXT_STAGE: dict[str, str] = {
    stage.value: following.value for stage, following in pairwise(FUNNEL_STAGES)
}
STAGE_PROBABILITY: dict[Stage, int] = {
    Stage.LEAD: 10,
    Stage.CONTACTED: 20,
    Stage.NEEDS_ANALYSIS: 40,
    Stage.PROPOSAL: 60,
    Stage.NEGOTIATION: 80,
    Stage.WON: 100,
    Stage.LOST: 0,
}


class LostReason(StrEnum):
    PRICE = "price"
    COMPETITOR = "competitor"
    NO_BUDGET = "no_budget"
    NO_DECISION = "no_decision"
    REQUIREMENTS_MISMATCH = "requirements_mismatch"
    OTHER = "other"


class Product(RecordBase, table=True):
    __tablename__ = "products"

    sku: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    unit: str = Field(max_length=32)
    list_price: Decimal = Field(sa_type=MoneyType)
    is_active: bool = Field(default=True, index=True)


class ProductCreate(InputSchema):
    sku: str = pydantic.Field(min_length=1, max_length=64, examples=["PUMP-200"])
    name: str = pydantic.Field(min_length=1, max_length=200, examples=["Centrifugal pump 200"])
    unit: str = pydantic.Field(default="piece", min_length=1, max_length=32)
    list_price: Money
    is_active: StrictBool = True


class ProductUpdate(InputSchema):
    __not_null__ = ("name", "unit", "list_price", "is_active")

    name: str | None = pydantic.Field(default=None, min_length=1, max_length=200)
    unit: str | None = pydantic.Field(default=None, min_length=1, max_length=32)
    list_price: Money | None = None
    is_active: StrictBool | None = None


class ProductRead(ResourceRead):
    sku: str
    name: str
    unit: str
    list_price: Money
    is_active: bool


class Opportunity(RecordBase, table=True):
    __tablename__ = "opportunities"
    __table_args__ = (
        *scoped_indexes("opportunities", "created", "created_at", "id"),
        Index("ix_opportunities_customer", "customer_id"),
        Index("ix_opportunities_stage", "stage"),
        # Reports (migration 0006): won and lost, the open pipeline, the funnel's scope;
        # migration 0008 made the won and open ones carry what the funnel and the pipeline
        # figures read, so they are answered from the index alone.
        *scoped_indexes("opportunities", "closed", "closed_at"),
        *scoped_indexes("opportunities", "won", "won_at", "stage", "amount", "deleted_at"),
        *scoped_indexes(
            "opportunities",
            "open",
            "expected_close_date",
            "stage",
            "amount",
            "probability",
            where="deleted_at IS NULL AND stage IN "
            "('lead', 'contacted', 'needs_analysis', 'proposal', 'negotiation')",
        ),
        *scoped_indexes("opportunities", "live", "created_at", "id", where="deleted_at IS NULL"),
        # The few deleted ones, which the funnel leaves out of the scope's stage changes.
        Index(
            "ix_opportunities_deleted",
            "region_id",
            "owner_id",
            "id",
            postgresql_where=text("deleted_at IS NOT NULL"),
            sqlite_where=text("deleted_at IS NOT NULL"),
        ),
    )

    customer_id: uuid.UUID = Field(foreign_key="customers.id")
    title: str = Field(max_length=200)
    amount: Decimal = Field(default=Decimal("0.00"), sa_type=MoneyType)
    expected_close_date: date | None = Field(default=None)
    probability: int | None = Field(default=None)
    source: str | None = Field(default=None, sa_type=String(32))
    needs_summary: str | None = Field(default=None, sa_type=Text)
    next_follow_up_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    stage: str = Field(default=Stage.LEAD, sa_type=String(32))
    owner_id: uuid.UUID = Field(foreign_key="users.id")
    region_id: uuid.UUID | None = Field(default=None, foreign_key="regions.id")
    lost_reason: str | None = Field(default=None, sa_type=String(32))
    lost_from_stage: str | None = Field(default=None, sa_type=String(32))
    won_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OpportunityFields(InputSchema):
    amount: Money | None = None
    expected_close_date: Day | None = None
    probability: StrictInt | None = pydantic.Field(
        default=None, ge=0, le=100, description="Percent; null means the stage's default."
    )
    source: str | None = pydantic.Field(default=None, max_length=32)
    needs_summary: str | None = pydantic.Field(default=None, max_length=4000)
    next_follow_up_at: Timestamp | None = None


class OpportunityCreate(OpportunityFields):
    customer_id: uuid.UUID
    title: str = pydantic.Field(min_length=1, max_length=200, examples=["Two dyeing lines"])


class OpportunityUpdate(OpportunityFields):
    __not_null__ = ("title", "amount")

    title: str | None = pydantic.Field(default=None, min_length=1, max_length=200)


class OpportunityRead(ResourceRead):
    customer_id: uuid.UUID
    customer_name: str = pydantic.Field(description="The customer's name, as its `name`.")
    title: str
    amount: Money
    expected_close_date: date | None
    probability: int = pydantic.Field(description="Set, or the stage's default.")
    source: str | None
    needs_summary: str | None
    next_follow_up_at: datetime | None
    stage: Stage
    owner_id: uuid.UUID
    owner_name: str = pydantic.Field(description="The owner's `full_name`.")
    region_id: uuid.UUID | None
    lost_reason: LostReason | None
    won_at: datetime | None
    closed_at: datetime | None


class OpportunityTransition(InputSchema):
    to: Stage
    note: str | None = pydantic.Field(default=None, max_length=4000)
    lost_reason: LostReason | None = None
