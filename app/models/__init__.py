"""All tables, imported so that ``SQLModel.metadata`` knows every one of them."""

from app.models.customers import Contact, Customer, FollowUp
from app.models.people import RefreshToken, Region, User
from app.models.pipeline import Opportunity, Product
from app.models.platform import AuditEntry, Event, IdempotencyRecord, StateChange
from app.models.quotes import Quote, QuoteLine
from app.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookSecret

__all__ = [
    "AuditEntry",
    "Contact",
    "Customer",
    "Event",
    "FollowUp",
    "IdempotencyRecord",
    "Opportunity",
    "Product",
    "Quote",
    "QuoteLine",
    "RefreshToken",
    "Region",
    "StateChange",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookSecret",
]
