"""Customer complaints: intake, handling workflow, SLA breaches and progress updates."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import pydantic
from pydantic import StrictInt
from sqlalchemy import Index, String, Text
from sqlmodel import Field, SQLModel

from app.models.base import InputSchema, ReadSchema, RecordBase, ResourceRead, scoped_indexes
from app.models.types import Timestamp, UTCDateTime, utcnow


class ComplaintStatus(StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Channel(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    WEB = "web"
    IN_PERSON = "in_person"
    SOCIAL = "social"
    OTHER = "other"


class Category(StrEnum):
    PRODUCT_QUALITY = "product_quality"
    DELIVERY = "delivery"
    SERVICE = "service"
    BILLING = "billing"
    OTHER = "other"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Resolution(StrEnum):
    REFUND = "refund"
    REPLACEMENT = "replacement"
    REPAIR = "repair"
    COMPENSATION = "compensation"
    EXPLANATION = "explanation"
    OTHER = "other"


class Complaint(RecordBase, table=True):
    """A complaint; ``owner_id``/``region_id`` are the customer's at intake and decide scope."""

    __tablename__ = "complaints"
    __table_args__ = (
        *scoped_indexes("complaints", "created", "created_at", "id"),
        Index("ix_complaints_customer", "customer_id"),
        Index("ix_complaints_assignee", "assignee_id"),
        Index("ix_complaints_status", "status"),
        Index("ix_complaints_acknowledge_due_at", "acknowledge_due_at"),
        Index("ix_complaints_resolve_due_at", "resolve_due_at"),
        # Reports (migration 0006): received and closed in a period.
        *scoped_indexes("complaints", "received", "received_at"),
        *scoped_indexes("complaints", "closed", "closed_at"),
    )

    customer_id: uuid.UUID = Field(foreign_key="customers.id")
    contract_id: uuid.UUID | None = Field(default=None, foreign_key="contracts.id")
    channel: str = Field(sa_type=String(16))
    category: str = Field(sa_type=String(32))
    severity: str = Field(sa_type=String(16))
    description: str = Field(sa_type=Text)
    received_at: datetime = Field(sa_type=UTCDateTime)
    received_by_id: uuid.UUID = Field(foreign_key="users.id")
    assignee_id: uuid.UUID = Field(foreign_key="users.id")
    owner_id: uuid.UUID = Field(foreign_key="users.id")
    region_id: uuid.UUID | None = Field(default=None, foreign_key="regions.id")
    status: str = Field(default=ComplaintStatus.RECEIVED, sa_type=String(16))
    acknowledge_due_at: datetime = Field(sa_type=UTCDateTime)
    resolve_due_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When a breach was first found. A breach is a fact about the past: it stays, whatever
    # later changes to severity or received_at would make the due times say.
    breached_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolution: str | None = Field(default=None, sa_type=String(16))
    resolution_details: str | None = Field(default=None, sa_type=Text)
    satisfaction: int | None = Field(default=None)
    root_cause: str | None = Field(default=None, sa_type=Text)
    corrective_action: str | None = Field(default=None, sa_type=Text)


class ComplaintProgress(SQLModel, table=True):
    """A progress update sent to the customer (及时反馈处理进展); written once, never changed."""

    __tablename__ = "complaint_updates"
    __region_parent__: ClassVar[str | None] = "complaint_id"
    __audited__: ClassVar[bool] = True

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    complaint_id: uuid.UUID = Field(foreign_key="complaints.id", index=True, ondelete="CASCADE")
    message: str = Field(sa_type=Text)
    author_id: uuid.UUID = Field(foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


_TEXT = 4000


class ComplaintFields(InputSchema):
    contract_id: uuid.UUID | None = pydantic.Field(
        default=None, description="A contract of the same customer, if the complaint is about one."
    )
    channel: Channel | None = None
    category: Category | None = None
    severity: Severity | None = None
    description: str | None = pydantic.Field(default=None, min_length=1, max_length=_TEXT)
    received_at: Timestamp | None = pydantic.Field(
        default=None, description="When the customer complained; never in the future."
    )
    assignee_id: uuid.UUID | None = pydantic.Field(
        default=None,
        description="The handler: an active user of the complaint's region. Managers (own "
        "region) and the director may choose; by default the customer's owner.",
    )


class ComplaintCreate(ComplaintFields):
    customer_id: uuid.UUID
    channel: Channel
    category: Category
    severity: Severity
    description: str = pydantic.Field(
        min_length=1, max_length=_TEXT, examples=["The pump arrived with a cracked housing."]
    )
    received_at: Timestamp | None = pydantic.Field(
        default=None, description="When the customer complained (default: now); never later."
    )


class ComplaintUpdate(ComplaintFields):
    """Change a complaint's details; due times follow a new severity or ``received_at``.

    ``severity`` and ``received_at`` change only before acknowledgement, and only by a manager
    (own region) or the director."""

    __not_null__ = (
        "channel",
        "category",
        "severity",
        "description",
        "received_at",
        "assignee_id",
    )


class ComplaintRead(ResourceRead):
    customer_id: uuid.UUID
    customer_name: str = pydantic.Field(description="The customer's name, as its `name`.")
    contract_id: uuid.UUID | None
    channel: Channel
    category: Category
    severity: Severity
    description: str
    received_at: datetime
    received_by_id: uuid.UUID = pydantic.Field(description="Who logged the complaint.")
    assignee_id: uuid.UUID = pydantic.Field(description="The handler.")
    owner_id: uuid.UUID
    owner_name: str = pydantic.Field(description="The owner's `full_name`.")
    region_id: uuid.UUID | None
    status: ComplaintStatus
    acknowledge_due_at: datetime
    resolve_due_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    breached: bool = pydantic.Field(
        description="A due time passed before its step (acknowledge, resolve) was done; once "
        "true, it stays true."
    )
    breached_at: datetime | None = pydantic.Field(
        description="When the breach was found and recorded (set once, never cleared)."
    )
    escalated_at: datetime | None = pydantic.Field(
        description="When the complaint was escalated to the region's manager, on a breach "
        "or by a manager's hand (set once)."
    )
    resolution: Resolution | None
    resolution_details: str | None
    satisfaction: int | None = pydantic.Field(description="The customer's score 1–5 at closing.")
    root_cause: str | None
    corrective_action: str | None

    def unversioned(self) -> tuple[Any, ...]:
        # A breach is found by the clock, and escalation is the server's bookkeeping.
        return (*super().unversioned(), self.breached, self.breached_at, self.escalated_at)


class ComplaintTransition(InputSchema):
    to: ComplaintStatus
    note: str | None = pydantic.Field(
        default=None, max_length=_TEXT, description="Needed to reopen; the details of a resolution."
    )
    resolution: Resolution | None = pydantic.Field(default=None, description="To resolve.")
    satisfaction: StrictInt | None = pydantic.Field(
        default=None, ge=1, le=5, description="To close: the customer's score 1–5."
    )
    root_cause: str | None = pydantic.Field(default=None, max_length=_TEXT, description="To close.")
    corrective_action: str | None = pydantic.Field(
        default=None, max_length=_TEXT, description="To close."
    )


class ComplaintEscalate(InputSchema):
    note: str = pydantic.Field(
        min_length=1, max_length=_TEXT, examples=["Key account; the plant is standing still."]
    )


class ComplaintProgressCreate(InputSchema):
    message: str = pydantic.Field(
        min_length=1, max_length=_TEXT, examples=["The replacement housing ships tomorrow."]
    )


class ComplaintProgressRead(ReadSchema):
    id: uuid.UUID
    complaint_id: uuid.UUID
    message: str
    author_id: uuid.UUID
    created_at: datetime
