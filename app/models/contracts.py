"""Contracts: lines copied from the accepted quote, the payment plan, deliveries, payments."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pydantic
from sqlalchemy import Index, Integer, Numeric, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.models.base import InputSchema, ReadSchema, RecordBase, ResourceRead, scoped_indexes
from app.models.types import Day, DecimalAnswer, Money, MoneyType, UTCDateTime


class ContractStatus(StrEnum):
    DRAFT = "draft"
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    SIGNED = "signed"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    TERMINATED = "terminated"
    CANCELLED = "cancelled"


class ReviewStep(StrEnum):
    MANAGER = "manager"
    DIRECTOR = "director"


class InstallmentStatus(StrEnum):
    OPEN = "open"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"


class PaymentMethod(StrEnum):
    BANK_TRANSFER = "bank_transfer"
    CASH = "cash"
    CHEQUE = "cheque"
    CARD = "card"
    OTHER = "other"


class DeliveryStatus(StrEnum):
    PLANNED = "planned"
    DELIVERED = "delivered"
    CONFIRMED = "confirmed"


class ContractCounter(SQLModel, table=True):
    """The last contract number handed out per year. Incremented in the creating transaction,
    so a creation that rolls back gives its number back: no gaps, no duplicates."""

    __tablename__ = "contract_counters"

    year: int = Field(sa_type=Integer, primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_number: int = Field(default=0)


class Contract(RecordBase, table=True):
    __tablename__ = "contracts"
    __table_args__ = (
        *scoped_indexes("contracts", "created", "created_at", "id"),
        Index("ix_contracts_status_due", "status", "review_due_at"),
        # Reports (migration 0006): revenue and new customers by signing time, from the index
        # alone; each customer's first contract.
        *scoped_indexes("contracts", "signed", "signed_at", "status", "amount", "customer_id"),
        Index("ix_contracts_customer_signed", "customer_id", "signed_at", "status"),
        # One live contract per opportunity: a cancelled one frees it for a new contract.
        Index(
            "uq_contracts_opportunity_live",
            "opportunity_id",
            unique=True,
            sqlite_where=text("status <> 'cancelled'"),
            postgresql_where=text("status <> 'cancelled'"),
        ),
    )

    number: str = Field(max_length=16, unique=True)
    opportunity_id: uuid.UUID = Field(foreign_key="opportunities.id", index=True)
    quote_id: uuid.UUID = Field(foreign_key="quotes.id")
    customer_id: uuid.UUID = Field(foreign_key="customers.id", index=True)
    owner_id: uuid.UUID = Field(foreign_key="users.id")
    region_id: uuid.UUID | None = Field(default=None, foreign_key="regions.id")
    amount: Decimal = Field(sa_type=MoneyType)
    paid_amount: Decimal = Field(default=Decimal("0.00"), sa_type=MoneyType)
    delivery_date: date | None = Field(default=None)
    payment_terms: str | None = Field(default=None, sa_type=Text)
    delivery_terms: str | None = Field(default=None, sa_type=Text)
    warranty: str | None = Field(default=None, sa_type=Text)
    status: str = Field(default=ContractStatus.DRAFT, sa_type=String(32))
    # Review: who reviews now, since when, by when; whether the director reviews after the
    # manager (decided on submission, from the amount and the threshold then in force).
    director_review: bool = Field(default=False)
    review_step: str | None = Field(default=None, sa_type=String(16))
    review_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    review_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    review_overdue_notified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    submitted_by_id: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    manager_approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    manager_approved_by_id: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    approved_by_id: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    decision_note: str | None = Field(default=None, sa_type=Text)
    signed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    terminated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    termination_reason: str | None = Field(default=None, sa_type=Text)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ContractLine(SQLModel, table=True):
    """A quote line as signed: product details are copied so later catalogue edits do not
    rewrite the contract."""

    __tablename__ = "contract_lines"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    contract_id: uuid.UUID = Field(foreign_key="contracts.id", index=True, ondelete="CASCADE")
    position: int
    product_id: uuid.UUID = Field(foreign_key="products.id")
    sku: str = Field(max_length=64)
    name: str = Field(max_length=200)
    unit: str = Field(max_length=32)
    quantity: Decimal = Field(sa_type=Numeric(14, 3))
    unit_price: Decimal = Field(sa_type=MoneyType)
    list_price: Decimal = Field(sa_type=MoneyType)
    discount_percent: Decimal = Field(sa_type=Numeric(5, 2))
    line_total: Decimal = Field(sa_type=MoneyType)


class Installment(RecordBase, table=True):
    __tablename__ = "installments"
    __region_parent__ = "contract_id"
    __table_args__ = (
        Index("ix_installments_contract_due", "contract_id", "due_date"),
        # The collection sweep: unpaid installments not yet reported overdue, by due date
        # (paid and reported ones, the bulk of the history, stay out of it).
        Index(
            "ix_installments_overdue_unreported",
            "due_date",
            sqlite_where=text("overdue_notified_at IS NULL AND status != 'paid'"),
            postgresql_where=text("overdue_notified_at IS NULL AND status != 'paid'"),
        ),
    )

    contract_id: uuid.UUID = Field(foreign_key="contracts.id")
    position: int
    due_date: date = Field(index=True)
    amount: Decimal = Field(sa_type=MoneyType)
    paid_amount: Decimal = Field(default=Decimal("0.00"), sa_type=MoneyType)
    status: str = Field(default=InstallmentStatus.OPEN, sa_type=String(16))
    # When the worker reported it overdue (installment.overdue, once) and planned collection.
    overdue_notified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Payment(RecordBase, table=True):
    __tablename__ = "payments"
    __table_args__ = (
        Index("ix_payments_contract_created", "contract_id", "created_at", "id"),
        # Reports (migration 0008): a region's or a rep's payments in a period, read from the
        # index alone.
        *scoped_indexes("payments", "received", "received_on", "amount"),
    )

    contract_id: uuid.UUID = Field(foreign_key="contracts.id")
    # The contract's owner and region, copied when the payment is recorded (a contract keeps
    # them for good), so reports find a scope's payments without joining every contract.
    owner_id: uuid.UUID = Field(foreign_key="users.id")
    region_id: uuid.UUID | None = Field(default=None, foreign_key="regions.id")
    installment_id: uuid.UUID | None = Field(default=None, foreign_key="installments.id")
    amount: Decimal = Field(sa_type=MoneyType)
    received_on: date = Field(index=True)
    method: str = Field(sa_type=String(16))
    reference: str | None = Field(default=None, max_length=200)
    recorded_by_id: uuid.UUID | None = Field(default=None, foreign_key="users.id")


class PaymentAllocation(SQLModel, table=True):
    """How much of a payment went to which installment."""

    __tablename__ = "payment_allocations"
    __table_args__ = (UniqueConstraint("payment_id", "installment_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    payment_id: uuid.UUID = Field(foreign_key="payments.id", index=True, ondelete="CASCADE")
    installment_id: uuid.UUID = Field(foreign_key="installments.id", index=True)
    amount: Decimal = Field(sa_type=MoneyType)


class Delivery(RecordBase, table=True):
    __tablename__ = "deliveries"
    __region_parent__ = "contract_id"
    __table_args__ = (Index("ix_deliveries_contract_created", "contract_id", "created_at", "id"),)

    contract_id: uuid.UUID = Field(foreign_key="contracts.id")
    description: str = Field(sa_type=Text)
    planned_date: date
    delivered_on: date | None = Field(default=None)
    confirmed_on: date | None = Field(default=None)
    confirmed_by: str | None = Field(default=None, max_length=200)


# Request and response schemas.


class ContractTerms(InputSchema):
    delivery_date: Day | None = None
    payment_terms: str | None = pydantic.Field(default=None, max_length=4000)
    delivery_terms: str | None = pydantic.Field(default=None, max_length=4000)
    warranty: str | None = pydantic.Field(
        default=None, max_length=4000, description="Warranty / quality guarantee."
    )


class ContractCreate(ContractTerms):
    opportunity_id: uuid.UUID = pydantic.Field(
        description="A won opportunity; its accepted quote gives the lines, amount and terms "
        "(payment and delivery terms unless given here)."
    )


class ContractUpdate(ContractTerms):
    pass


class ContractLineRead(ReadSchema):
    position: int
    product_id: uuid.UUID
    sku: str
    name: str
    unit: str
    quantity: DecimalAnswer
    unit_price: Money
    list_price: Money
    discount_percent: DecimalAnswer
    line_total: Money


class ContractRead(ResourceRead):
    number: str = pydantic.Field(examples=["HT-2026-00001"])
    opportunity_id: uuid.UUID
    quote_id: uuid.UUID
    customer_id: uuid.UUID
    customer_name: str = pydantic.Field(description="The customer's name, as its `name`.")
    owner_id: uuid.UUID
    owner_name: str = pydantic.Field(description="The owner's `full_name`.")
    region_id: uuid.UUID | None
    amount: Money
    paid_amount: Money = pydantic.Field(description="Received so far.")
    outstanding_amount: Money
    lines: list[ContractLineRead]
    delivery_date: date | None
    payment_terms: str | None
    delivery_terms: str | None
    warranty: str | None
    status: ContractStatus
    director_review: bool = pydantic.Field(
        description="Above the director threshold: the director reviews after the manager."
    )
    review_step: ReviewStep | None = pydantic.Field(description="Who reviews now.")
    review_started_at: datetime | None = pydantic.Field(
        description="When the contract reached the current reviewer."
    )
    review_due_at: datetime | None = pydantic.Field(
        description="review_started_at plus the review SLA in working hours."
    )
    review_overdue: bool
    submitted_at: datetime | None
    submitted_by_id: uuid.UUID | None
    manager_approved_at: datetime | None
    manager_approved_by_id: uuid.UUID | None
    approved_at: datetime | None
    approved_by_id: uuid.UUID | None
    decision_note: str | None
    signed_at: datetime | None
    completed_at: datetime | None
    terminated_at: datetime | None
    termination_reason: str | None
    cancelled_at: datetime | None

    def unversioned(self) -> tuple[Any, ...]:
        return (*super().unversioned(), self.review_overdue)  # the clock passed review_due_at


class ContractTransition(InputSchema):
    to: ContractStatus
    note: str | None = pydantic.Field(default=None, max_length=4000)
    reason: str | None = pydantic.Field(
        default=None, max_length=4000, description="Why the contract is terminated."
    )


class InstallmentCreate(InputSchema):
    due_date: Day
    amount: Money = pydantic.Field(gt=0)


class InstallmentPlan(InputSchema):
    installments: list[InstallmentCreate] = pydantic.Field(
        max_length=120, description="The whole plan; an empty list clears it."
    )


class InstallmentRead(ResourceRead):
    contract_id: uuid.UUID
    position: int
    due_date: date
    amount: Money
    paid_amount: Money
    outstanding_amount: Money
    status: InstallmentStatus
    overdue: bool = pydantic.Field(description="Past its due date and not fully paid.")


class PaymentCreate(InputSchema):
    amount: Money = pydantic.Field(gt=0)
    received_on: Day
    method: PaymentMethod
    reference: str | None = pydantic.Field(default=None, max_length=200)
    installment_id: uuid.UUID | None = pydantic.Field(
        default=None, description="Default: the oldest open installments first."
    )


class AllocationRead(ReadSchema):
    installment_id: uuid.UUID
    amount: Money


class PaymentRead(ResourceRead):
    contract_id: uuid.UUID
    installment_id: uuid.UUID | None
    amount: Money
    received_on: date
    method: PaymentMethod
    reference: str | None
    recorded_by_id: uuid.UUID | None
    allocations: list[AllocationRead]


class DeliveryCreate(InputSchema):
    description: str = pydantic.Field(min_length=1, max_length=4000, examples=["10 pumps"])
    planned_date: Day


class DeliveryUpdate(InputSchema):
    __not_null__ = ("description", "planned_date")

    description: str | None = pydantic.Field(default=None, min_length=1, max_length=4000)
    planned_date: Day | None = None
    delivered_on: Day | None = None
    confirmed_on: Day | None = pydantic.Field(
        default=None, description="When the customer confirmed receipt."
    )
    confirmed_by: str | None = pydantic.Field(
        default=None, min_length=1, max_length=200, description="Who confirmed, for the customer."
    )


class DeliveryRead(ResourceRead):
    contract_id: uuid.UUID
    description: str
    planned_date: date
    delivered_on: date | None
    confirmed_on: date | None
    confirmed_by: str | None
    status: DeliveryStatus


class ReceivableRead(ReadSchema):
    """An open installment of a signed or running contract."""

    installment_id: uuid.UUID
    contract_id: uuid.UUID
    contract_number: str
    customer_id: uuid.UUID
    customer_name: str = pydantic.Field(description="The customer's name, as its `name`.")
    owner_id: uuid.UUID
    owner_name: str = pydantic.Field(description="The owner's `full_name`.")
    region_id: uuid.UUID | None
    due_date: date
    amount: Money
    paid_amount: Money
    outstanding_amount: Money
    status: InstallmentStatus
    overdue: bool
    days_overdue: int = pydantic.Field(description="0 unless overdue.")
