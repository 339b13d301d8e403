"""All tables, imported so that ``SQLModel.metadata`` knows every one of them."""

from app.models.customers import Contact, Customer, FollowUp
from app.models.people import RefreshToken, Region, User
from app.models.platform import AuditEntry, Event, IdempotencyRecord

__all__ = [
    "AuditEntry",
    "Contact",
    "Customer",
    "Event",
    "FollowUp",
    "IdempotencyRecord",
    "RefreshToken",
    "Region",
    "User",
]
