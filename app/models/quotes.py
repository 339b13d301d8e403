"""Quotes and their lines; discounts need approval before a quote is sent."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

import pydantic
from sqlalchemy import Numeric, String, Text
from sqlmodel import Field, SQLModel

from app.models.base import InputSchema, ReadSchema, RecordBase, ResourceRead
from app.models.types import Day, DecimalAnswer, Money, MoneyType, UTCDateTime


class QuoteStatus(StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    SENT = "sent"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"


class Quote(RecordBase, table=True):
    __tablename__ = "quotes"
    __region_parent__ = "opportunity_id"

    opportunity_id: uuid.UUID = Field(foreign_key="opportunities.id", index=True)
    status: str = Field(default=QuoteStatus.DRAFT, sa_type=String(32), index=True)
    valid_until: date | None = Field(default=None)
    payment_terms: str | None = Field(default=None, sa_type=Text)
    delivery_terms: str | None = Field(default=None, sa_type=Text)
    subtotal: Decimal = Field(default=Decimal("0.00"), sa_type=MoneyType)
    total: Decimal = Field(default=Decimal("0.00"), sa_type=MoneyType)
    discount_percent: Decimal = Field(default=Decimal("0.00"), sa_type=Numeric(5, 2))
    approver_role: str | None = Field(default=None, sa_type=String(32))
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    submitted_by_id: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decided_by_id: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    decision_note: str | None = Field(default=None, max_length=4000)


class QuoteLine(SQLModel, table=True):
    __tablename__ = "quote_lines"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    quote_id: uuid.UUID = Field(foreign_key="quotes.id", index=True, ondelete="CASCADE")
    position: int
    product_id: uuid.UUID = Field(foreign_key="products.id")
    quantity: Decimal = Field(sa_type=Numeric(14, 3))
    unit_price: Decimal = Field(sa_type=MoneyType)
    list_price: Decimal = Field(sa_type=MoneyType)
    discount_percent: Decimal = Field(sa_type=Numeric(5, 2))
    line_total: Decimal = Field(sa_type=MoneyType)


class QuoteLineInput(InputSchema):
    product_id: uuid.UUID
    quantity: Decimal = pydantic.Field(gt=0, max_digits=14, decimal_places=3, examples=["2"])
    unit_price: Money | None = pydantic.Field(
        default=None, description="Defaults to the product's list price."
    )


class QuoteFields(InputSchema):
    valid_until: Day | None = None
    payment_terms: str | None = pydantic.Field(default=None, max_length=4000)
    delivery_terms: str | None = pydantic.Field(default=None, max_length=4000)


class QuoteCreate(QuoteFields):
    lines: list[QuoteLineInput] = pydantic.Field(default_factory=list, max_length=200)


class QuoteUpdate(QuoteFields):
    lines: list[QuoteLineInput] | None = pydantic.Field(default=None, max_length=200)


class QuoteLineRead(ReadSchema):
    product_id: uuid.UUID
    quantity: DecimalAnswer
    unit_price: Money
    list_price: Money
    discount_percent: DecimalAnswer
    line_total: Money


class QuoteRead(ResourceRead):
    opportunity_id: uuid.UUID
    status: QuoteStatus
    valid_until: date | None
    payment_terms: str | None
    delivery_terms: str | None
    subtotal: Money = pydantic.Field(description="At list prices.")
    total: Money
    discount_percent: DecimalAnswer = pydantic.Field(description="Effective: 1 − total ÷ subtotal.")
    approver_role: str | None = pydantic.Field(description="Who must approve the discount.")
    submitted_at: datetime | None
    decided_at: datetime | None
    decided_by_id: uuid.UUID | None
    lines: list[QuoteLineRead]


class QuoteTransition(InputSchema):
    to: QuoteStatus
    note: str | None = pydantic.Field(default=None, max_length=4000)
