"""All tables, imported so that ``SQLModel.metadata`` knows every one of them."""

from app.models.complaints import Complaint, ComplaintProgress
from app.models.contracts import (
    Contract,
    ContractCounter,
    ContractLine,
    Delivery,
    Installment,
    Payment,
    PaymentAllocation,
)
from app.models.customers import Contact, Customer, FollowUp
from app.models.people import RefreshToken, Region, User
from app.models.performance import MarketSize, SettingsRecord, Target
from app.models.pipeline import Opportunity, Product
from app.models.platform import AuditEntry, Event, IdempotencyRecord, StateChange
from app.models.quotes import Quote, QuoteLine
from app.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookSecret

__all__ = [
    "AuditEntry",
    "Complaint",
    "ComplaintProgress",
    "Contact",
    "Contract",
    "ContractCounter",
    "ContractLine",
    "Customer",
    "Delivery",
    "Event",
    "FollowUp",
    "IdempotencyRecord",
    "Installment",
    "MarketSize",
    "Opportunity",
    "Payment",
    "PaymentAllocation",
    "Product",
    "Quote",
    "QuoteLine",
    "RefreshToken",
    "Region",
    "SettingsRecord",
    "StateChange",
    "Target",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookSecret",
]
