"""Customers: ownership and scope, duplicates, classification, follow-up cadence (the
changes; reading them is ``app.services.customer_reads``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.errors import Conflict, Forbidden, ValidationFailed
from app.models.complaints import Complaint, ComplaintStatus
from app.models.contracts import Contract, ContractStatus
from app.models.customers import (
    Classification,
    ClassificationOverride,
    Customer,
    CustomerCreate,
    CustomerRead,
    CustomerUpdate,
    FollowUp,
    FollowUpStatus,
    name_key,
    phone_key,
)
from app.models.people import Role, User
from app.models.pipeline import OPEN_STAGES, Opportunity
from app.models.types import utcnow
from app.permissions import Actor
from app.services import department, names
from app.services.common import ensure_version, get_in_scope
from app.services.customer_reads import to_read, visible_customers
from app.workflow import follow_owner


def suggest_classification(
    settings: department.DepartmentSettings,
    revenue_12m: Decimal,
    contracts_12m: int,
    largest_open_opportunity: Decimal,
) -> Classification:
    rules = settings.classification
    if revenue_12m >= rules.a_revenue or contracts_12m >= rules.a_contracts:
        return Classification.A
    if revenue_12m >= rules.b_revenue or largest_open_opportunity >= rules.b_open_opportunity:
        return Classification.B
    return Classification.C


def _schedule_next_follow_up(settings: department.DepartmentSettings, customer: Customer) -> None:
    days = settings.follow_up_cadence_days[customer.classification]
    since = customer.last_follow_up_at or customer.created_at
    customer.follow_up_due_at = since + timedelta(days=days)


async def get_customer(
    session: AsyncSession,
    actor: Actor,
    customer_id: uuid.UUID,
    *,
    for_update: bool = False,
    shown: bool = False,
) -> Customer:
    """The customer in scope (404 otherwise); ``shown``: with the names its answer shows,
    read in the same statement, for a change answered with the customer."""
    customer = await get_in_scope(
        session,
        Customer,
        customer_id,
        actor,
        name="customer",
        for_update=for_update,
        shown=CustomerRead if shown else None,
    )
    names.remember_customer(session, customer)
    return customer


async def _refuse_duplicates(
    session: AsyncSession, actor: Actor, key: str, phone: str | None, except_id: uuid.UUID | None
) -> None:
    match = Customer.name_key == key
    if phone:
        match = or_(match, Customer.phone_key == phone)
    stmt = select(Customer).where(Customer.deleted_at.is_(None), match)
    if except_id is not None:
        stmt = stmt.where(Customer.id != except_id)
    existing = (await session.scalars(stmt.limit(1))).first()
    if existing is None:
        return
    field = "name" if existing.name_key == key else "phone"
    visible = (
        await session.scalars(
            select(Customer.id).where(Customer.id == existing.id, visible_customers(actor))
        )
    ).first()
    if visible is not None:
        raise Conflict(
            f"Customer {existing.name!r} has the same {field} already.",
            reason=f"duplicate_{field}",
            existing_id=str(existing.id),
        )
    raise Conflict(
        f"A customer with the same {field} exists, owned by someone else.",
        reason=f"duplicate_{field}",
    )


async def _new_owner(session: AsyncSession, actor: Actor, owner_id: uuid.UUID) -> User:
    owner = await session.get(User, owner_id)
    if owner is None or not owner.is_active or owner.role == Role.DIRECTOR:
        raise ValidationFailed(["body", "owner_id"], "The owner must be an active rep or manager.")
    if actor.is_manager and owner.region_id != actor.region_id:
        raise Forbidden("You may only give customers to people of your own region.")
    if actor.role is Role.REP and owner.id != actor.id:
        raise Forbidden("Reps create customers for themselves.")
    return owner


async def create_customer(session: AsyncSession, actor: Actor, data: CustomerCreate) -> Customer:
    settings = await department.load(session)
    if data.owner_id is None and actor.is_director:
        # The director has no region: a customer of theirs would be no manager's to see.
        raise ValidationFailed(["body", "owner_id"], "Name the rep who will own the customer.")
    owner_id = data.owner_id or actor.id
    owner = await _new_owner(session, actor, owner_id) if owner_id != actor.id else None
    names.remember_user(session, owner_id, owner.full_name if owner else actor.full_name)
    key, phone = name_key(data.name), phone_key(data.phone)
    if not key:
        raise ValidationFailed(["body", "name"], "The name needs at least one letter or digit.")
    await _refuse_duplicates(session, actor, key, phone, None)
    customer = Customer(
        **data.model_dump(exclude={"owner_id", "email", "source"}),
        email=str(data.email) if data.email else None,
        source=data.source,
        name_key=key,
        phone_key=phone,
        owner_id=owner_id,
        region_id=owner.region_id if owner else actor.region_id,
    )
    customer.suggested_classification = suggest_classification(settings, Decimal(0), 0, Decimal(0))
    customer.classification = customer.suggested_classification
    _schedule_next_follow_up(settings, customer)
    session.add(customer)
    await session.flush()
    events.record(session, "customer.created", customer, await to_read(session, customer))
    return customer


async def update_customer(
    session: AsyncSession,
    actor: Actor,
    customer_id: uuid.UUID,
    data: CustomerUpdate,
    expected: int | None,
) -> Customer:
    customer = await get_customer(session, actor, customer_id, shown=True)
    ensure_version(customer, expected)
    sent = data.model_dump(exclude_unset=True)
    if "name" in sent and sent["name"] is None:
        raise ValidationFailed(["body", "name"], "A customer needs a name.")
    key = name_key(sent["name"]) if "name" in sent else customer.name_key
    phone = phone_key(sent["phone"]) if "phone" in sent else customer.phone_key
    if "name" in sent and not key:
        raise ValidationFailed(["body", "name"], "The name needs at least one letter or digit.")
    if key != customer.name_key or (phone and phone != customer.phone_key):
        await _refuse_duplicates(session, actor, key, phone, customer.id)
    for field, value in sent.items():
        setattr(customer, field, str(value) if field == "email" and value else value)
    customer.name_key, customer.phone_key = key, phone
    names.remember_customer(session, customer)
    if not session.is_modified(customer):
        # Nothing changed: no new version, and no event for subscribers to chase.
        return customer
    await session.flush()
    events.record(session, "customer.updated", customer, await to_read(session, customer))
    return customer


async def delete_customer(
    session: AsyncSession, actor: Actor, customer_id: uuid.UUID, expected: int | None
) -> None:
    customer = await get_customer(session, actor, customer_id)
    ensure_version(customer, expected)
    customer.deleted_at = utcnow()
    await session.flush()
    events.record(
        session, "customer.deleted", customer, {"id": str(customer.id), "name": customer.name}
    )


async def assign_customer(
    session: AsyncSession,
    actor: Actor,
    customer_id: uuid.UUID,
    owner_id: uuid.UUID,
    expected: int | None,
) -> Customer:
    customer = await get_customer(session, actor, customer_id)
    ensure_version(customer, expected)
    owner = await _new_owner(session, actor, owner_id)
    names.remember_user(session, owner.id, owner.full_name)
    previous = customer.owner_id
    customer.owner_id, customer.region_id = owner.id, owner.region_id
    # Open opportunities follow the customer; closed ones stay with whoever closed them.
    open_opportunities = await session.scalars(
        select(Opportunity).where(
            Opportunity.customer_id == customer.id,
            Opportunity.deleted_at.is_(None),
            Opportunity.stage.in_(OPEN_STAGES),
        )
    )
    # So do complaints still being handled.
    open_complaints = await session.scalars(
        select(Complaint).where(
            Complaint.customer_id == customer.id, Complaint.status != ComplaintStatus.CLOSED
        )
    )
    for entity_type, moved in (
        ("opportunity", open_opportunities.all()),
        ("complaint", open_complaints.all()),
    ):
        for record in moved:
            record.owner_id, record.region_id = owner.id, owner.region_id
        await follow_owner(session, entity_type, [r.id for r in moved], owner.id, owner.region_id)
    # Its follow-ups are seen by whoever has the customer.
    await session.execute(
        update(FollowUp)
        .where(FollowUp.customer_id == customer.id)
        .values(customer_owner_id=owner.id, customer_region_id=owner.region_id)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    read = await to_read(session, customer)
    events.record(
        session,
        "customer.assigned",
        customer,
        {**read.model_dump(mode="json"), "previous_owner_id": str(previous)},
    )
    return customer


async def override_classification(
    session: AsyncSession,
    actor: Actor,
    customer_id: uuid.UUID,
    data: ClassificationOverride | None,
    expected: int | None,
) -> Customer:
    """Set a manual class with a reason, or (``data`` None) return to the suggestion."""
    settings = await department.load(session)
    customer = await get_customer(session, actor, customer_id, shown=True)
    ensure_version(customer, expected)
    if data is None:
        customer.classification = customer.suggested_classification
        customer.classification_overridden = False
        customer.classification_reason = None
    else:
        customer.classification = data.classification
        customer.classification_overridden = True
        customer.classification_reason = data.reason
    customer.classified_by_id, customer.classified_at = actor.id, utcnow()
    _schedule_next_follow_up(settings, customer)
    await session.flush()
    events.record(session, "customer.classified", customer, await to_read(session, customer))
    return customer


async def note_follow_up_done(session: AsyncSession, customer: Customer, at: datetime) -> None:
    """A done follow-up moves the customer's last contact and next due date (never back)."""
    if customer.last_follow_up_at is None or at > customer.last_follow_up_at:
        settings = await department.load(session)
        customer.last_follow_up_at = at
        _schedule_next_follow_up(settings, customer)


async def refresh_last_follow_up(session: AsyncSession, customer: Customer) -> None:
    """Recompute the last contact from the done follow-ups, after one was edited or deleted:
    a corrected date or a removed entry must not leave the customer looking seen.

    The caller flushes its follow-up change first (sessions do not autoflush)."""
    latest = await session.scalar(
        select(func.max(FollowUp.occurred_at)).where(
            FollowUp.customer_id == customer.id, FollowUp.status == FollowUpStatus.DONE
        )
    )
    if latest != customer.last_follow_up_at:
        settings = await department.load(session)
        customer.last_follow_up_at = latest
        _schedule_next_follow_up(settings, customer)


def customers_visible_ids(actor: Actor) -> Select[Any]:
    """Ids of the customers the actor sees: the scope of everything hanging off a customer."""
    return select(Customer.id).where(visible_customers(actor))


# The suggestion counts what was signed in this many days before now.
CLASSIFICATION_DAYS = 365


async def refresh_classification(session: AsyncSession, customer: Customer) -> None:
    """Recompute the suggested class from signed revenue and contracts of the last 12 months
    and the largest open opportunity; the class follows unless a manager overrode it. This is
    the one computation of the suggestion: every change that may move it comes here.

    The caller flushes its own change first (sessions do not autoflush)."""
    settings = await department.load(session)
    since = utcnow() - timedelta(days=CLASSIFICATION_DAYS)
    revenue, count = (
        await session.execute(
            select(func.coalesce(func.sum(Contract.amount), 0), func.count(Contract.id)).where(
                Contract.customer_id == customer.id,
                Contract.signed_at >= since,
                Contract.status != ContractStatus.TERMINATED,
            )
        )
    ).one()
    largest = await session.scalar(
        select(func.coalesce(func.max(Opportunity.amount), 0)).where(
            Opportunity.customer_id == customer.id,
            Opportunity.deleted_at.is_(None),
            Opportunity.stage.in_(OPEN_STAGES),
        )
    )
    # Aggregates come back as the column's type on PostgreSQL, as a number on SQLite.
    suggested = suggest_classification(
        settings, Decimal(str(revenue)), int(count), Decimal(str(largest or 0))
    )
    customer.suggested_classification = suggested
    if not customer.classification_overridden and customer.classification != suggested:
        customer.classification = suggested
        _schedule_next_follow_up(settings, customer)


async def locked_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer:
    """The customer's row, locked and read afresh: of two changes reclassifying one customer
    at once, the later computes from what the earlier committed."""
    customer = await session.scalar(
        select(Customer)
        .where(Customer.id == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert customer is not None  # what refers to it keeps it (customers are deleted softly)
    return customer


async def reclassify(session: AsyncSession, customer: Customer) -> bool:
    """``refresh_classification``, then ``customer.updated`` if the customer changed (its
    suggestion, its class, or what the caller changed on it before); True if it did."""
    await refresh_classification(session, customer)
    if not session.is_modified(customer):
        return False
    await session.flush()
    events.record(session, "customer.updated", customer, await to_read(session, customer))
    return True


def counted_amount(opp: Opportunity) -> Decimal | None:
    """What an opportunity counts towards its customer's suggestion: its amount while it is
    open (and not deleted), else nothing."""
    return opp.amount if opp.stage in OPEN_STAGES and opp.deleted_at is None else None


async def follow_opportunity(
    session: AsyncSession, opp: Opportunity, counted_before: Decimal | None
) -> None:
    """Reclassify the opportunity's customer if its change (``counted_before`` is
    ``counted_amount`` before it) can move the suggestion: an opportunity counts only by
    whether an open one reaches the threshold, so a move between open stages, or an amount
    that stays below the threshold, reads nothing more."""
    counted_after = counted_amount(opp)
    if counted_after == counted_before:
        return
    threshold = (await department.load(session)).classification.b_open_opportunity
    if max(counted_before or Decimal(0), counted_after or Decimal(0)) < threshold:
        return
    await session.flush()  # the recomputation reads the opportunity as it is now
    await reclassify(session, await locked_customer(session, opp.customer_id))


async def aged_customers(session: AsyncSession, lookback_days: int) -> list[uuid.UUID]:
    """Live customers with a signed contract that turned 12 months old in the last
    ``lookback_days``: its revenue and count leave their suggestion. The worker reclassifies
    them daily; looking back further than a day reaches those a stopped worker missed."""
    aged = utcnow() - timedelta(days=CLASSIFICATION_DAYS)
    stmt = (
        select(Contract.customer_id)
        .join(Customer, Customer.id == Contract.customer_id)
        .where(
            Contract.signed_at >= aged - timedelta(days=lookback_days),
            Contract.signed_at < aged,
            Contract.status != ContractStatus.TERMINATED,  # left the suggestion when terminated
            Customer.deleted_at.is_(None),
        )
        .group_by(Contract.customer_id)
        .order_by(Contract.customer_id)
    )
    return list((await session.scalars(stmt)).all())
