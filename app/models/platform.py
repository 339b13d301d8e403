"""Cross-domain records: the event outbox, the audit log and idempotency keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import pydantic
from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models.base import SCOPE, JSONType, ReadSchema, SerialType, scoped_indexes
from app.models.types import UTCDateTime, utcnow


# app.event_payloads describes each one's data (the document's webhooks), and
# tests/test_event_payloads.py checks that the code records no other name.
class EventType(StrEnum):
    """Every event type: in the feed and in webhook deliveries (`webhook.test` only in the
    latter). The document's `webhooks` give each one's `data`."""

    CUSTOMER_CREATED = "customer.created"
    CUSTOMER_UPDATED = "customer.updated"
    CUSTOMER_DELETED = "customer.deleted"
    CUSTOMER_ASSIGNED = "customer.assigned"
    CUSTOMER_CLASSIFIED = "customer.classified"
    CONTACT_CREATED = "contact.created"
    CONTACT_UPDATED = "contact.updated"
    CONTACT_DELETED = "contact.deleted"
    FOLLOW_UP_CREATED = "follow_up.created"
    FOLLOW_UP_UPDATED = "follow_up.updated"
    FOLLOW_UP_DELETED = "follow_up.deleted"
    PRODUCT_CREATED = "product.created"
    PRODUCT_UPDATED = "product.updated"
    OPPORTUNITY_CREATED = "opportunity.created"
    OPPORTUNITY_UPDATED = "opportunity.updated"
    OPPORTUNITY_DELETED = "opportunity.deleted"
    OPPORTUNITY_STAGE_CHANGED = "opportunity.stage_changed"
    OPPORTUNITY_WON = "opportunity.won"
    OPPORTUNITY_LOST = "opportunity.lost"
    OPPORTUNITY_REOPENED = "opportunity.reopened"
    QUOTE_CREATED = "quote.created"
    QUOTE_UPDATED = "quote.updated"
    QUOTE_STATUS_CHANGED = "quote.status_changed"
    QUOTE_SENT = "quote.sent"
    QUOTE_APPROVAL_REQUESTED = "quote.approval_requested"
    QUOTE_APPROVED = "quote.approved"
    QUOTE_REJECTED = "quote.rejected"
    QUOTE_ACCEPTED = "quote.accepted"
    QUOTE_DECLINED = "quote.declined"
    QUOTE_EXPIRED = "quote.expired"
    CONTRACT_CREATED = "contract.created"
    CONTRACT_UPDATED = "contract.updated"
    CONTRACT_STATUS_CHANGED = "contract.status_changed"
    CONTRACT_SUBMITTED = "contract.submitted"
    CONTRACT_MANAGER_APPROVED = "contract.manager_approved"
    CONTRACT_APPROVED = "contract.approved"
    CONTRACT_REJECTED = "contract.rejected"
    CONTRACT_SIGNED = "contract.signed"
    CONTRACT_CANCELLED = "contract.cancelled"
    CONTRACT_TERMINATED = "contract.terminated"
    CONTRACT_COMPLETED = "contract.completed"
    CONTRACT_REVIEW_OVERDUE = "contract.review_overdue"
    PAYMENT_RECEIVED = "payment.received"
    INSTALLMENT_OVERDUE = "installment.overdue"
    DELIVERY_CREATED = "delivery.created"
    DELIVERY_UPDATED = "delivery.updated"
    DELIVERY_CONFIRMED = "delivery.confirmed"
    COMPLAINT_CREATED = "complaint.created"
    COMPLAINT_UPDATED = "complaint.updated"
    COMPLAINT_ASSIGNED = "complaint.assigned"
    COMPLAINT_ESCALATED = "complaint.escalated"
    COMPLAINT_UPDATE_ADDED = "complaint.update_added"
    COMPLAINT_STATUS_CHANGED = "complaint.status_changed"
    COMPLAINT_ACKNOWLEDGED = "complaint.acknowledged"
    COMPLAINT_RESOLVED = "complaint.resolved"
    COMPLAINT_CLOSED = "complaint.closed"
    COMPLAINT_REOPENED = "complaint.reopened"
    REGION_CREATED = "region.created"
    REGION_UPDATED = "region.updated"
    REGION_DELETED = "region.deleted"
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    TARGET_SET = "target.set"
    TARGET_DELETED = "target.deleted"
    MARKET_SIZE_SET = "market_size.set"
    SETTINGS_UPDATED = "settings.updated"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_UPDATED = "webhook.updated"
    WEBHOOK_DELETED = "webhook.deleted"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"
    WEBHOOK_DISABLED = "webhook.disabled"
    WEBHOOK_TEST = "webhook.test"


class Event(SQLModel, table=True):
    """The outbox: one row per business event, written in the transaction of its change.

    ``seq`` orders the feed; ``owner_id``/``region_id`` scope it like the record it describes
    (both null: company-wide, visible to the director only).
    """

    __tablename__ = "events"

    seq: int | None = Field(default=None, sa_column=Column(SerialType, primary_key=True))
    id: uuid.UUID = Field(default_factory=uuid.uuid4, unique=True)
    type: str = Field(max_length=64, index=True)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor_id: uuid.UUID | None = Field(default=None)
    entity_type: str = Field(max_length=64)
    entity_id: uuid.UUID | None = Field(default=None)
    owner_id: uuid.UUID | None = Field(default=None, index=True)
    region_id: uuid.UUID | None = Field(default=None, index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    # Set when the webhook worker has made this event's deliveries; null rows are its queue.
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)


class EventRead(ReadSchema):
    id: uuid.UUID
    type: EventType
    timestamp: datetime = pydantic.Field(validation_alias="occurred_at")
    entity_type: str
    entity_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    data: dict[str, Any]


class EventPage(SQLModel):
    items: list[EventRead]
    next_cursor: str | None = pydantic.Field(
        description="Pass as `after` to read on, also when this page is empty."
    )


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor_id: uuid.UUID | None = Field(default=None, index=True)
    action: str = Field(max_length=16)
    entity_type: str = Field(max_length=64)
    entity_id: uuid.UUID
    region_id: uuid.UUID | None = Field(default=None, index=True)
    before: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    after: dict[str, Any] | None = Field(default=None, sa_type=JSONType)


class AuditEntryRead(ReadSchema):
    id: uuid.UUID
    at: datetime
    actor_id: uuid.UUID | None
    action: str
    entity_type: str
    entity_id: uuid.UUID
    region_id: uuid.UUID | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class IdempotencyRecord(SQLModel, table=True):
    """The first answer to a POST with an ``Idempotency-Key``, replayed to its retries."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("principal", "key", name="uq_idempotency_keys_principal_key"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    principal: str = Field(max_length=64)
    key: str = Field(max_length=255)
    request_digest: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    status_code: int | None = Field(default=None)
    response_headers: list[list[str]] | None = Field(default=None, sa_type=JSONType)
    response_body: bytes | None = Field(default=None, sa_column=Column(LargeBinary))


class StateChange(SQLModel, table=True):
    """Every state change of every workflow resource: from, to, who, when, note."""

    __tablename__ = "state_changes"
    __table_args__ = (
        # Reports (migration 0006): the period's changes, each opportunity's history in order.
        Index("ix_state_changes_type_at", "entity_type", "at", "entity_id"),
        # Migration 0008: a region's or a rep's changes in a period (the funnel).
        # They carry what the funnel reads, so it reads them alone.
        *scoped_indexes(
            "state_changes",
            "at",
            *("entity_type", SCOPE, "at", "entity_id"),
            *("from_state", "to_state", "from_state_at", "next_state_at"),
        ),
        Index(
            "ix_state_changes_history",
            "entity_id",
            "entity_type",
            "at",
            "id",
            "from_state",
            "to_state",
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    entity_type: str = Field(max_length=32)
    entity_id: uuid.UUID = Field(index=True)
    from_state: str = Field(max_length=32)
    to_state: str = Field(max_length=32)
    actor_id: uuid.UUID | None = Field(default=None)
    note: str | None = Field(default=None, max_length=4000)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # When the resource entered ``from_state`` (the change before, or its creation): the stay
    # this change ends is ``at - from_state_at`` without reading the history before it.
    from_state_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the resource last moved on from ``to_state`` to the state after it, for workflows
    # that name one (the sales funnel): whether an entry advanced, without a later row.
    next_state_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The owner and region of the resource (for those that have them), kept in step when it
    # changes hands (``app.workflow.follow_owner``), so reports pick a scope's changes by index.
    owner_id: uuid.UUID | None = Field(default=None)
    region_id: uuid.UUID | None = Field(default=None)


class StateChangeRead(ReadSchema):
    from_state: str
    to_state: str
    actor_id: uuid.UUID | None
    note: str | None
    at: datetime
