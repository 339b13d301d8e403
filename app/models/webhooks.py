"""Webhook endpoints, their signing secrets, and the deliveries made to them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import pydantic
from pydantic import ConfigDict, HttpUrl, StrictBool, StrictInt
from sqlalchemy import Column, ForeignKey, Index, String, Text, UniqueConstraint, Uuid, text
from sqlmodel import Field, SQLModel

from app.models.base import InputSchema, JSONType, ReadSchema, RecordBase, ResourceRead
from app.models.types import UTCDateTime, utcnow

# An event type (``customer.created``) or ``*`` for every event.
EventPattern = Annotated[
    str,
    pydantic.Field(
        max_length=64,
        pattern=r"^(\*|[a-z][a-z0-9_]*(\.[a-z0-9_]+)+)$",
        examples=["customer.created", "*"],
    ),
]


class WebhookDeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookEndpoint(RecordBase, table=True):
    """Where events are sent. The secrets live in ``webhook_secrets``, out of the audit log."""

    __tablename__ = "webhook_endpoints"

    url: str = Field(max_length=2048)
    events: list[str] = Field(default_factory=list, sa_type=JSONType)
    description: str | None = Field(default=None, max_length=500)
    is_active: bool = Field(default=True)
    # The first failed attempt since the last success; five days of it disable the endpoint.
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_reason: str | None = Field(default=None, max_length=200)


class WebhookSecret(SQLModel, table=True):
    """A signing secret. Every unexpired one signs, so a rotated-out one keeps working
    until ``expires_at``: receivers can switch without losing a delivery."""

    __tablename__ = "webhook_secrets"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    endpoint_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid(),
            ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    secret: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookDelivery(SQLModel, table=True):
    """One message to one endpoint, tried until it succeeds or its attempts run out.

    ``message_id`` is the ``webhook-id`` header: the event's id (a test message's own id),
    the same on every attempt so receivers can drop duplicates. ``payload`` is the exact body
    sent, fixed at creation so every attempt carries the same bytes.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "message_id", name="uq_webhook_deliveries_endpoint_id"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at", "id"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    endpoint_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid(), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
        )
    )
    message_id: uuid.UUID
    event_id: uuid.UUID | None = Field(default=None, foreign_key="events.id", index=True)
    event_type: str = Field(max_length=64)
    payload: str = Field(sa_type=Text)
    status: str = Field(default=WebhookDeliveryStatus.PENDING, sa_type=String(16))
    attempts: int = Field(default=0)
    max_attempts: int = Field(default=1)
    # While an attempt is in flight this is the end of its lease: past it, the attempt is
    # taken for lost (the worker died) and the next one may be made.
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status_code: int | None = Field(default=None)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs={"onupdate": utcnow}
    )


class WebhookAttempt(SQLModel, table=True):
    """One HTTP request of a delivery. The row is written before the request is sent, so an
    attempt cut short by a crash still shows in the log."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        UniqueConstraint("delivery_id", "number", name="uq_webhook_attempts_delivery_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    delivery_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid(), ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
        )
    )
    number: int
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    succeeded: bool = Field(default=False)
    status_code: int | None = Field(default=None)
    latency_ms: int | None = Field(default=None)
    response_excerpt: str | None = Field(default=None, sa_type=Text)
    error: str | None = Field(default=None, max_length=500)


# Schemas ------------------------------------------------------------------------------------


class WebhookFields(InputSchema):
    description: str | None = pydantic.Field(default=None, max_length=500)


class WebhookCreate(WebhookFields):
    url: HttpUrl = pydantic.Field(
        description="http or https. Loopback and private addresses are refused unless the "
        "deployment allows them (SALESDESK_WEBHOOK_ALLOW_PRIVATE_URLS).",
        examples=["https://hooks.example.com/salesdesk"],
    )
    events: list[EventPattern] = pydantic.Field(
        min_length=1,
        max_length=100,
        description="Event types to receive, by exact name, or `*` for all of them.",
        examples=[["customer.created", "opportunity.stage_changed"]],
    )
    is_active: StrictBool = True


class WebhookUpdate(WebhookFields):
    __not_null__ = ("url", "events", "is_active")

    url: HttpUrl | None = None
    events: list[EventPattern] | None = pydantic.Field(default=None, min_length=1, max_length=100)
    is_active: StrictBool | None = pydantic.Field(
        default=None, description="Turning an endpoint back on clears its failure streak."
    )


class WebhookRead(ResourceRead):
    url: str
    events: list[str]
    description: str | None
    is_active: bool
    failing_since: datetime | None = pydantic.Field(
        description="When the current run of failed attempts began; null while it succeeds."
    )
    disabled_reason: str | None = pydantic.Field(
        description="Why the server turned the endpoint off, if it did."
    )

    def unversioned(self) -> tuple[Any, ...]:
        # Kept by the delivery worker, beside the version.
        return (*super().unversioned(), self.failing_since)


class WebhookWithSecret(WebhookRead):
    secret: str = pydantic.Field(
        description="The signing secret (`whsec_…`). Shown only now: keep it.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookRotate(InputSchema):
    overlap_seconds: StrictInt = pydantic.Field(
        default=86400,
        ge=0,
        le=7 * 86400,
        description="How long the current secret keeps signing beside the new one.",
    )


class WebhookRotated(WebhookWithSecret):
    previous_secret_expires_at: datetime = pydantic.Field(
        description="Until then deliveries carry a signature by the old secret as well."
    )


class WebhookAttemptRead(ReadSchema):
    number: int
    started_at: datetime
    finished_at: datetime | None = pydantic.Field(
        description="Null while in flight, or if the worker stopped before storing the answer."
    )
    succeeded: bool
    status_code: int | None
    latency_ms: int | None
    response_excerpt: str | None = pydantic.Field(description="The first 1 KB of the answer.")
    error: str | None = pydantic.Field(description="Why no HTTP answer was had, if none was.")


class WebhookDeliveryRead(ReadSchema):
    # Every member is in every answer: ``attempts`` too, though it has a default.
    model_config = ConfigDict(
        from_attributes=True, json_schema_serialization_defaults_required=True
    )

    id: uuid.UUID
    endpoint_id: uuid.UUID
    message_id: uuid.UUID = pydantic.Field(
        description="The `webhook-id` header: the same on every attempt."
    )
    event_id: uuid.UUID | None = pydantic.Field(description="The event; null for test messages.")
    event_type: str
    status: WebhookDeliveryStatus
    attempt_count: int
    max_attempts: int
    next_attempt_at: datetime | None = pydantic.Field(
        description="When the next attempt is due; while one is in flight, when it is given "
        "up for lost. Null once the delivery has succeeded or failed."
    )
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    attempts: list[WebhookAttemptRead] = pydantic.Field(
        default_factory=list, description="Every attempt, oldest first."
    )
