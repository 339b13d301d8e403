"""What each event's ``data`` is, as the OpenAPI document's ``webhooks`` describe it.

Receivers (and readers of ``/api/v1/events``) generate their types from that section: one
webhook per event type, whose body is the delivery envelope
``{"type", "timestamp", "data"}`` (``app.webhooks.messages.message_body``) with the event's
own ``data`` schema. The schemas are the ones the recording code writes: mostly the
resource as the API shows it, a move through a workflow adds ``from`` and ``note``
(``app.workflow``), a deletion keeps only what names the record.
"""

from __future__ import annotations

import inspect
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from app.models.complaints import ComplaintProgressRead, ComplaintRead, ComplaintStatus
from app.models.contracts import (
    ContractRead,
    ContractStatus,
    DeliveryRead,
    InstallmentRead,
    PaymentRead,
)
from app.models.customers import ContactRead, CustomerRead, FollowUpRead
from app.models.people import RegionRead, UserRead
from app.models.performance import MarketSizeRead, TargetRead
from app.models.pipeline import OpportunityRead, ProductRead, Stage
from app.models.platform import EventType
from app.models.quotes import QuoteRead, QuoteStatus
from app.models.webhooks import WebhookRead
from app.routers.common import operation_id

E = EventType


def _moved(read: type[BaseModel], state: type[StrEnum], name: str) -> type[BaseModel]:
    """The data of a move through a workflow: the resource after it, the state it left and
    the note given with it."""
    return create_model(
        name,
        __base__=read,
        __doc__=f"The {read.__name__.removesuffix('Read').lower()} after a move.",
        from_=(state, Field(alias="from", description="The state it moved from.")),
        note=(str | None, Field(description="The note given with the move.")),
    )


OpportunityMoved = _moved(OpportunityRead, Stage, "OpportunityMoved")
QuoteMoved = _moved(QuoteRead, QuoteStatus, "QuoteMoved")
ContractMoved = _moved(ContractRead, ContractStatus, "ContractMoved")
ComplaintMoved = _moved(ComplaintRead, ComplaintStatus, "ComplaintMoved")


class _Named(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CustomerDeleted(_Named):
    id: uuid.UUID
    name: str


class CustomerAssigned(CustomerRead):
    previous_owner_id: uuid.UUID


class FollowUpDeleted(_Named):
    id: uuid.UUID
    customer_id: uuid.UUID


class OpportunityDeleted(_Named):
    id: uuid.UUID
    title: str


class PaymentReceived(PaymentRead):
    contract_number: str


class InstallmentOverdue(InstallmentRead):
    contract_number: str
    customer_id: uuid.UUID
    owner_id: uuid.UUID = Field(description="The contract's owner, who is to collect.")
    days_overdue: int
    follow_up_id: uuid.UUID = Field(description="The collection call planned for the owner.")


class DeliveryEvent(DeliveryRead):
    contract_number: str


class ComplaintAssigned(ComplaintRead):
    previous_assignee_id: uuid.UUID


class ComplaintEscalated(ComplaintRead):
    breaches: list[Literal["acknowledge", "resolve"]] = Field(
        description="The steps whose due time passed before they were done."
    )
    notify_user_ids: list[uuid.UUID] = Field(description="Who is told of the escalation.")
    escalated_by_id: uuid.UUID | None = Field(
        description="Who escalated it by hand; null when a breach escalated it."
    )
    note: str | None = Field(description="The note of an escalation by hand, else null.")


class RegionDeleted(_Named):
    id: uuid.UUID
    name: str


class TargetDeleted(_Named):
    id: uuid.UUID


class SettingsUpdated(_Named):
    changed: list[str] = Field(description="The settings sections replaced.")


class WebhookDeleted(_Named):
    id: uuid.UUID
    url: str


class WebhookSecretRotated(_Named):
    id: uuid.UUID
    previous_secret_expires_at: datetime


class WebhookTest(_Named):
    webhook_id: uuid.UUID
    message: str


PAYLOADS: dict[EventType, type[BaseModel]] = {
    E.CUSTOMER_CREATED: CustomerRead,
    E.CUSTOMER_UPDATED: CustomerRead,
    E.CUSTOMER_DELETED: CustomerDeleted,
    E.CUSTOMER_ASSIGNED: CustomerAssigned,
    E.CUSTOMER_CLASSIFIED: CustomerRead,
    E.CONTACT_CREATED: ContactRead,
    E.CONTACT_UPDATED: ContactRead,
    E.CONTACT_DELETED: ContactRead,
    E.FOLLOW_UP_CREATED: FollowUpRead,
    E.FOLLOW_UP_UPDATED: FollowUpRead,
    E.FOLLOW_UP_DELETED: FollowUpDeleted,
    E.PRODUCT_CREATED: ProductRead,
    E.PRODUCT_UPDATED: ProductRead,
    E.OPPORTUNITY_CREATED: OpportunityRead,
    E.OPPORTUNITY_UPDATED: OpportunityRead,
    E.OPPORTUNITY_DELETED: OpportunityDeleted,
    E.OPPORTUNITY_STAGE_CHANGED: OpportunityMoved,
    E.OPPORTUNITY_WON: OpportunityMoved,
    E.OPPORTUNITY_LOST: OpportunityMoved,
    E.OPPORTUNITY_REOPENED: OpportunityMoved,
    E.QUOTE_CREATED: QuoteRead,
    E.QUOTE_UPDATED: QuoteRead,
    E.QUOTE_STATUS_CHANGED: QuoteMoved,
    E.QUOTE_SENT: QuoteMoved,
    E.QUOTE_APPROVAL_REQUESTED: QuoteMoved,
    E.QUOTE_APPROVED: QuoteMoved,
    E.QUOTE_REJECTED: QuoteMoved,
    E.QUOTE_ACCEPTED: QuoteMoved,
    E.QUOTE_DECLINED: QuoteMoved,
    E.QUOTE_EXPIRED: QuoteMoved,
    E.CONTRACT_CREATED: ContractRead,
    E.CONTRACT_UPDATED: ContractRead,
    E.CONTRACT_STATUS_CHANGED: ContractMoved,
    E.CONTRACT_SUBMITTED: ContractMoved,
    E.CONTRACT_MANAGER_APPROVED: ContractMoved,
    E.CONTRACT_APPROVED: ContractMoved,
    E.CONTRACT_REJECTED: ContractMoved,
    E.CONTRACT_SIGNED: ContractMoved,
    E.CONTRACT_CANCELLED: ContractMoved,
    E.CONTRACT_TERMINATED: ContractMoved,
    E.CONTRACT_COMPLETED: ContractMoved,
    E.CONTRACT_REVIEW_OVERDUE: ContractRead,
    E.PAYMENT_RECEIVED: PaymentReceived,
    E.INSTALLMENT_OVERDUE: InstallmentOverdue,
    E.DELIVERY_CREATED: DeliveryEvent,
    E.DELIVERY_UPDATED: DeliveryEvent,
    E.DELIVERY_CONFIRMED: DeliveryEvent,
    E.COMPLAINT_CREATED: ComplaintRead,
    E.COMPLAINT_UPDATED: ComplaintRead,
    E.COMPLAINT_ASSIGNED: ComplaintAssigned,
    E.COMPLAINT_ESCALATED: ComplaintEscalated,
    E.COMPLAINT_UPDATE_ADDED: ComplaintProgressRead,
    E.COMPLAINT_STATUS_CHANGED: ComplaintMoved,
    E.COMPLAINT_ACKNOWLEDGED: ComplaintMoved,
    E.COMPLAINT_RESOLVED: ComplaintMoved,
    E.COMPLAINT_CLOSED: ComplaintMoved,
    E.COMPLAINT_REOPENED: ComplaintMoved,
    E.REGION_CREATED: RegionRead,
    E.REGION_UPDATED: RegionRead,
    E.REGION_DELETED: RegionDeleted,
    E.USER_CREATED: UserRead,
    E.USER_UPDATED: UserRead,
    E.TARGET_SET: TargetRead,
    E.TARGET_DELETED: TargetDeleted,
    E.MARKET_SIZE_SET: MarketSizeRead,
    E.SETTINGS_UPDATED: SettingsUpdated,
    E.WEBHOOK_CREATED: WebhookRead,
    E.WEBHOOK_UPDATED: WebhookRead,
    E.WEBHOOK_DELETED: WebhookDeleted,
    E.WEBHOOK_SECRET_ROTATED: WebhookSecretRotated,
    E.WEBHOOK_DISABLED: WebhookRead,
    E.WEBHOOK_TEST: WebhookTest,
}
if PAYLOADS.keys() != set(EventType):
    raise TypeError(f"events without a payload schema: {set(EventType) - PAYLOADS.keys()}")


def _camel(event: EventType) -> str:
    return "".join(part.capitalize() for part in event.value.replace(".", "_").split("_"))


def envelope(event: EventType) -> type[BaseModel]:
    """The body of a delivery of ``event`` (``app.webhooks.messages.message_body``)."""
    return create_model(
        f"{_camel(event)}Event",
        __doc__=f"What Salesdesk posts for `{event.value}`.",
        type=(Literal[event.value], ...),  # type: ignore[valid-type]
        timestamp=(datetime, Field(description="When the event occurred (UTC).")),
        data=(PAYLOADS[event], ...),
    )


def _describe_deliveries() -> APIRouter:
    """One route per event type: what Salesdesk POSTs to a subscribed endpoint (signed as
    Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).
    Documentation only: nothing is served at these names."""
    router = APIRouter(tags=["webhooks"], generate_unique_id_function=operation_id)
    for event in EventType:
        body = envelope(event)

        async def receive(body: Any) -> None:  # pragma: no cover - never called
            return None

        receive.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=body)],
            return_annotation=None,
        )
        router.add_api_route(
            event.value,
            receive,
            methods=["POST"],
            name=f"webhook_{event.value.replace('.', '_')}",
            summary=f"`{event.value}` happened",
            status_code=200,
            response_class=Response,
            response_description="Any 2xx acknowledges the delivery.",
            responses={"default": {"description": "Anything else: retried with growing delays."}},
        )
    return router


# Built once, like the domains' routers: an app joins them (tests build many apps).
DELIVERIES = _describe_deliveries()


def install_webhooks(app: FastAPI) -> None:
    """The document's ``webhooks``: one entry per event type."""
    app.webhooks.routes.extend(DELIVERIES.routes)
