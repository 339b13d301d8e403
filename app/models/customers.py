"""Customers, their contacts and follow-ups."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import pydantic
from pydantic import EmailStr, StrictBool, StrictInt
from sqlalchemy import Index, String, Text, text
from sqlmodel import Field

from app.models.base import InputSchema, RecordBase, ResourceRead, scoped_indexes
from app.models.types import Timestamp, UTCDateTime

# What the name_key and phone_key columns hold: the duplicate check compares them, and
# a search matches name_key.
_PUNCTUATION = re.compile(r"[\W_]+", re.UNICODE)


def name_key(name: str) -> str:
    """Case, width, spacing and punctuation do not make a different company."""
    return _PUNCTUATION.sub("", unicodedata.normalize("NFKC", name).casefold())


def phone_key(phone: str | None) -> str | None:
    if not phone:
        return None
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", phone))
    return digits or None


class Classification(StrEnum):
    A = "A"
    B = "B"
    C = "C"


class CustomerStatus(StrEnum):
    PROSPECT = "prospect"
    ACTIVE = "active"
    DORMANT = "dormant"
    LOST = "lost"


class LeadSource(StrEnum):
    EXHIBITION = "exhibition"
    REFERRAL = "referral"
    WEB = "web"
    ADVERTISING = "advertising"
    COLD_CALL = "cold_call"
    EXISTING_CUSTOMER = "existing_customer"
    OTHER = "other"


class FollowUpKind(StrEnum):
    CALL = "call"
    EMAIL = "email"
    VISIT = "visit"
    MEETING = "meeting"
    RETURN_VISIT = "return_visit"
    OTHER = "other"


class FollowUpStatus(StrEnum):
    PLANNED = "planned"
    DONE = "done"


class Customer(RecordBase, table=True):
    __tablename__ = "customers"
    __table_args__ = (
        # Duplicates are refused among live customers only; a deleted one frees its name.
        Index(
            "uq_customers_name_key_live",
            "name_key",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index(
            "uq_customers_phone_key_live",
            "phone_key",
            unique=True,
            sqlite_where=text("deleted_at IS NULL AND phone_key IS NOT NULL"),
            postgresql_where=text("deleted_at IS NULL AND phone_key IS NOT NULL"),
        ),
        *scoped_indexes("customers", "created", "created_at", "id"),
        Index("ix_customers_follow_up_due_at", "follow_up_due_at"),
        # Migration 0009: a rep's or a region's search reads the page's ids from the index.
        *scoped_indexes(
            "customers", "search", "created_at", "id", "name_key", where="deleted_at IS NULL"
        ),
        # Migration 0009: the few deleted customers, whose follow-ups lists leave out.
        Index(
            "ix_customers_deleted",
            "id",
            postgresql_where=text("deleted_at IS NOT NULL"),
            sqlite_where=text("deleted_at IS NOT NULL"),
        ),
        # The keyset order of unscoped lists (the director's), first page or deep; the due
        # date lets ``overdue=true`` be decided in the index, without a heap visit per row.
        Index(
            "ix_customers_created",
            "created_at",
            "id",
            "follow_up_due_at",
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        # ``q`` is a substring search: trigrams on PostgreSQL (a plain index on SQLite).
        Index(
            "ix_customers_name_key_trgm",
            "name_key",
            postgresql_using="gin",
            postgresql_ops={"name_key": "gin_trgm_ops"},
        ),
    )

    name: str = Field(max_length=200)
    name_key: str = Field(max_length=200)
    industry: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=500)
    phone: str | None = Field(default=None, max_length=50)
    phone_key: str | None = Field(default=None, max_length=50)
    email: str | None = Field(default=None, max_length=254)
    source: str | None = Field(default=None, sa_type=String(32))
    needs: str | None = Field(default=None, sa_type=Text)
    # Not indexed alone: three values, and a bitmap of a third of the table intersected with
    # a rep's book cost more than reading the book (0007_scale_indexes).
    classification: str = Field(default=Classification.C, sa_type=String(1))
    suggested_classification: str = Field(default=Classification.C, sa_type=String(1))
    classification_overridden: bool = Field(default=False)
    classification_reason: str | None = Field(default=None, max_length=500)
    classified_by_id: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    classified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(default=CustomerStatus.PROSPECT, sa_type=String(16), index=True)
    owner_id: uuid.UUID = Field(foreign_key="users.id")
    region_id: uuid.UUID | None = Field(default=None, foreign_key="regions.id")
    last_follow_up_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    follow_up_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CustomerFields(InputSchema):
    industry: str | None = pydantic.Field(default=None, max_length=200)
    address: str | None = pydantic.Field(default=None, max_length=500)
    phone: str | None = pydantic.Field(
        default=None, max_length=50, pattern=r"^[0-9+()\-. ]{3,50}$", examples=["+86 21 5555 0101"]
    )
    email: EmailStr | None = pydantic.Field(default=None, max_length=254)
    source: LeadSource | None = None
    needs: str | None = pydantic.Field(default=None, max_length=4000)


class CustomerCreate(CustomerFields):
    name: str = pydantic.Field(
        min_length=1, max_length=200, examples=["Shanghai Lianhua Trading Co."]
    )
    owner_id: uuid.UUID | None = pydantic.Field(
        default=None,
        description="Managers may create for a rep of their region, the director for any rep "
        "(and must name one); default: you.",
    )


class CustomerUpdate(CustomerFields):
    __not_null__ = ("name",)

    name: str | None = pydantic.Field(default=None, min_length=1, max_length=200)


class CustomerRead(ResourceRead):
    name: str
    industry: str | None
    address: str | None
    phone: str | None
    email: str | None
    source: LeadSource | None
    needs: str | None
    classification: Classification
    suggested_classification: Classification
    classification_overridden: bool
    classification_reason: str | None
    classified_by_id: uuid.UUID | None = pydantic.Field(
        description="Who last set or cleared the manual classification."
    )
    classified_at: datetime | None
    status: CustomerStatus
    owner_id: uuid.UUID
    owner_name: str = pydantic.Field(description="The owner's `full_name`.")
    region_id: uuid.UUID | None
    last_follow_up_at: datetime | None
    follow_up_due_at: datetime | None

    def unversioned(self) -> tuple[Any, ...]:
        # Dormancy is the clock's verdict (no follow-up for dormant_after_days); every other
        # status is the row's.
        return (*super().unversioned(), self.status == CustomerStatus.DORMANT)


class CustomerAssign(InputSchema):
    owner_id: uuid.UUID


class ClassificationOverride(InputSchema):
    classification: Classification
    reason: str = pydantic.Field(min_length=1, max_length=500)


class Contact(RecordBase, table=True):
    __tablename__ = "contacts"
    __region_parent__ = "customer_id"

    customer_id: uuid.UUID = Field(foreign_key="customers.id", index=True)
    name: str = Field(max_length=200)
    title: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=50)
    email: str | None = Field(default=None, max_length=254)
    is_primary: bool = Field(default=False)


class ContactFields(InputSchema):
    title: str | None = pydantic.Field(default=None, max_length=200)
    phone: str | None = pydantic.Field(default=None, max_length=50, pattern=r"^[0-9+()\-. ]{3,50}$")
    email: EmailStr | None = pydantic.Field(default=None, max_length=254)
    is_primary: StrictBool | None = None


class ContactCreate(ContactFields):
    name: str = pydantic.Field(min_length=1, max_length=200)


class ContactUpdate(ContactFields):
    __not_null__ = ("name", "is_primary")

    name: str | None = pydantic.Field(default=None, min_length=1, max_length=200)


class ContactRead(ResourceRead):
    customer_id: uuid.UUID
    name: str
    title: str | None
    phone: str | None
    email: str | None
    is_primary: bool


class FollowUp(RecordBase, table=True):
    __tablename__ = "follow_ups"
    __region_column__ = "customer_region_id"
    __table_args__ = (
        Index("ix_follow_ups_customer_created", "customer_id", "created_at", "id"),
        Index("ix_follow_ups_owner_created", "owner_id", "created_at", "id"),
        # Migration 0009: a rep's list is a range of this index, however large the book.
        Index("ix_follow_ups_customer_owner_created", "customer_owner_id", "created_at", "id"),
        Index("ix_follow_ups_created", "created_at", "id"),
        # Reports (migration 0006): return visits in a period.
        Index("ix_follow_ups_kind_occurred", "kind", "occurred_at"),
    )

    customer_id: uuid.UUID = Field(foreign_key="customers.id")
    # Who wrote it. The customer's owner and region below decide who sees it.
    owner_id: uuid.UUID = Field(foreign_key="users.id")
    # Copies of the customer's, kept in step when the customer is reassigned, so a scope's
    # follow-ups are found without looking up each one's customer.
    customer_owner_id: uuid.UUID = Field(foreign_key="users.id")
    customer_region_id: uuid.UUID | None = Field(default=None, foreign_key="regions.id")
    kind: str = Field(sa_type=String(16))
    status: str = Field(sa_type=String(16))
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    occurred_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    summary: str | None = Field(default=None, sa_type=Text)
    outcome: str | None = Field(default=None, sa_type=Text)
    next_follow_up_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    opportunity_id: uuid.UUID | None = Field(default=None)
    contract_id: uuid.UUID | None = Field(default=None)
    complaint_id: uuid.UUID | None = Field(default=None)
    satisfaction: int | None = Field(default=None)


class FollowUpFields(InputSchema):
    kind: FollowUpKind | None = None
    status: FollowUpStatus | None = None
    due_at: Timestamp | None = pydantic.Field(
        default=None, description="When a planned follow-up is due."
    )
    occurred_at: Timestamp | None = pydantic.Field(
        default=None,
        description="When a done follow-up happened; may be in the past, not in the future. "
        "Default: now.",
    )
    summary: str | None = pydantic.Field(default=None, max_length=4000)
    outcome: str | None = pydantic.Field(default=None, max_length=4000)
    next_follow_up_at: Timestamp | None = None
    opportunity_id: uuid.UUID | None = None
    contract_id: uuid.UUID | None = None
    complaint_id: uuid.UUID | None = None
    satisfaction: StrictInt | None = pydantic.Field(
        default=None, ge=1, le=5, description="1–5, for return visits only."
    )


class FollowUpCreate(FollowUpFields):
    customer_id: uuid.UUID
    kind: FollowUpKind
    status: FollowUpStatus = FollowUpStatus.DONE


class FollowUpUpdate(FollowUpFields):
    __not_null__ = ("kind", "status")


class FollowUpRead(ResourceRead):
    customer_id: uuid.UUID
    customer_name: str = pydantic.Field(description="The customer's name, as its `name`.")
    owner_id: uuid.UUID
    owner_name: str = pydantic.Field(description="The owner's `full_name`.")
    kind: FollowUpKind
    status: FollowUpStatus
    due_at: datetime | None
    occurred_at: datetime | None
    summary: str | None
    outcome: str | None
    next_follow_up_at: datetime | None
    opportunity_id: uuid.UUID | None
    contract_id: uuid.UUID | None
    complaint_id: uuid.UUID | None
    satisfaction: int | None
