"""Follow-ups: planned and done contacts with a customer. Scope is the customer's."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.answers import check_plain, values_of
from app.errors import ValidationFailed
from app.models.complaints import Complaint
from app.models.contracts import Contract
from app.models.customers import (
    Customer,
    FollowUp,
    FollowUpCreate,
    FollowUpKind,
    FollowUpRead,
    FollowUpStatus,
    FollowUpUpdate,
)
from app.models.pipeline import Opportunity
from app.models.types import utcnow
from app.pagination import paginate
from app.permissions import Actor, scope_filter
from app.services import names
from app.services.common import answer_columns, ensure_version, get_visible
from app.services.customers import (
    get_customer,
    note_follow_up_done,
    refresh_last_follow_up,
)

FOLLOW_UP_SORTS = {
    "created_at": FollowUp.created_at,
    "updated_at": FollowUp.updated_at,
    "due_at": FollowUp.due_at,
}
_READ_COLUMNS = answer_columns(FollowUp, FollowUpRead)
_READ_NAMES = check_plain(FollowUpRead)
# Clocks of phones and laptops drift; a follow-up "done" a minute ahead is not in the future.
_CLOCK_SKEW = timedelta(minutes=5)


def _check(follow_up: FollowUp) -> None:
    """The rules a follow-up must satisfy whatever way it was written."""
    if follow_up.status == FollowUpStatus.PLANNED and follow_up.due_at is None:
        raise ValidationFailed(["body", "due_at"], "A planned follow-up needs due_at.")
    if follow_up.status == FollowUpStatus.DONE:
        if follow_up.occurred_at is None:
            follow_up.occurred_at = utcnow()
        if follow_up.occurred_at > utcnow() + _CLOCK_SKEW:
            raise ValidationFailed(
                ["body", "occurred_at"], "A done follow-up cannot be in the future."
            )
    if follow_up.satisfaction is not None and follow_up.kind != FollowUpKind.RETURN_VISIT:
        raise ValidationFailed(["body", "satisfaction"], "Only return visits carry a satisfaction.")
    # A score is the customer's answer at the visit: a visit still planned has none yet.
    if follow_up.satisfaction is not None and follow_up.status == FollowUpStatus.PLANNED:
        raise ValidationFailed(
            ["body", "satisfaction"], "A planned return visit has no satisfaction until it is done."
        )


def new_follow_up(customer: Customer, **fields: Any) -> FollowUp:
    """A follow-up with the customer, carrying the customer's owner and region (its scope)."""
    return FollowUp(
        **fields,
        customer_id=customer.id,
        customer_owner_id=customer.owner_id,
        customer_region_id=customer.region_id,
    )


# What a follow-up may be about, each by its id field: the customer's own records only.
_LINKS: tuple[tuple[str, Any, str], ...] = (
    ("opportunity_id", Opportunity, "opportunity"),
    ("contract_id", Contract, "contract"),
    ("complaint_id", Complaint, "complaint"),
)


async def _check_links(session: AsyncSession, follow_up: FollowUp, fields: Any) -> None:
    """A linked opportunity, contract or complaint must exist and be the same customer's
    (so a link never points into another customer's records, in scope or not)."""
    for field, model, name in _LINKS:
        if field not in fields or getattr(follow_up, field) is None:
            continue
        owner = await session.scalar(
            select(model.customer_id).where(model.id == getattr(follow_up, field))
        )
        if owner != follow_up.customer_id:
            raise ValidationFailed(["body", field], f"No {name} with this id for this customer.")


async def create_follow_up(session: AsyncSession, actor: Actor, data: FollowUpCreate) -> FollowUp:
    customer = await get_customer(session, actor, data.customer_id)
    follow_up = new_follow_up(
        customer, **data.model_dump(exclude={"customer_id"}), owner_id=actor.id
    )
    _check(follow_up)
    await _check_links(session, follow_up, data.model_fields_set)
    session.add(follow_up)
    if follow_up.status == FollowUpStatus.DONE and follow_up.occurred_at is not None:
        await note_follow_up_done(session, customer, follow_up.occurred_at)
    await session.flush()
    await record(session, "follow_up.created", follow_up, customer)
    return follow_up


async def to_read(session: AsyncSession, follow_up: FollowUp) -> FollowUpRead:
    shown = await names.names_for(session, FollowUpRead, follow_up)
    return FollowUpRead.model_validate({**follow_up.model_dump(), **shown})


async def record(
    session: AsyncSession, type_: str, follow_up: FollowUp, customer: Customer
) -> None:
    """The follow-up's event, scoped by its customer."""
    read = await to_read(session, follow_up)
    events.record(session, type_, follow_up, read, scope=customer)


def _visible(actor: Actor) -> Any:
    """The follow-ups the actor sees: by the customer's owner and region copied onto each
    (an index on the copied owner and created_at makes a rep's page a range of it, however
    large the book), except those of deleted customers (a small set, from a partial index;
    checking each row's customer instead made PostgreSQL join the rep's whole book)."""
    return and_(
        scope_filter(actor, FollowUp.customer_owner_id, FollowUp.customer_region_id),
        FollowUp.customer_id.not_in(select(Customer.id).where(Customer.deleted_at.is_not(None))),
    )


async def get_follow_up(session: AsyncSession, actor: Actor, follow_up_id: uuid.UUID) -> FollowUp:
    """The follow-up in scope (404 otherwise), with the names its answer shows."""
    return await get_visible(
        session, FollowUp, follow_up_id, _visible(actor), name="follow-up", shown=FollowUpRead
    )


async def list_follow_ups(
    session: AsyncSession,
    actor: Actor,
    *,
    customer_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    kind: FollowUpKind | None = None,
    status: FollowUpStatus | None = None,
    overdue: bool | None = None,
    from_: datetime | None = None,
    to: datetime | None = None,
    sort: str = "-created_at",
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the follow-ups ``actor`` sees, as ``FollowUpRead``'s values, and the cursor
    of the next page."""
    # The answer's columns, not the entity: the page is written from their values
    # (``app.answers``), without an ORM object and a read schema built for each row.
    stmt = select(*_READ_COLUMNS).where(_visible(actor))
    if customer_id is not None:
        stmt = stmt.where(FollowUp.customer_id == customer_id)
    if owner_id is not None:
        stmt = stmt.where(FollowUp.owner_id == owner_id)
    if kind is not None:
        stmt = stmt.where(FollowUp.kind == kind)
    if status is not None:
        stmt = stmt.where(FollowUp.status == status)
    if overdue is not None:
        is_overdue = (FollowUp.status == FollowUpStatus.PLANNED) & (FollowUp.due_at < utcnow())
        stmt = stmt.where(is_overdue if overdue else ~is_overdue)
    when = func.coalesce(FollowUp.occurred_at, FollowUp.due_at)
    if from_ is not None:
        stmt = stmt.where(when >= from_)
    if to is not None:
        stmt = stmt.where(when < to)
    rows, next_cursor = await paginate(
        session,
        stmt,
        sort=sort,
        sortable=FOLLOW_UP_SORTS,
        id_column=FollowUp.id,
        cursor=cursor,
        limit=limit,
    )
    return values_of(_READ_NAMES, rows), next_cursor


async def update_follow_up(
    session: AsyncSession,
    actor: Actor,
    follow_up_id: uuid.UUID,
    data: FollowUpUpdate,
    expected: int | None,
) -> FollowUp:
    follow_up = await get_follow_up(session, actor, follow_up_id)
    ensure_version(follow_up, expected)
    sent = data.model_dump(exclude_unset=True)
    for required in ("kind", "status"):
        if required in sent and sent[required] is None:
            raise ValidationFailed(["body", required], f"{required} cannot be null.")
    for field, value in sent.items():
        setattr(follow_up, field, value)
    _check(follow_up)
    await _check_links(session, follow_up, sent)
    if not session.is_modified(follow_up):
        return follow_up
    await session.flush()
    customer = await session.get_one(Customer, follow_up.customer_id)
    # Done-ness or the date may have changed either way: recount from the stored follow-ups.
    await refresh_last_follow_up(session, customer)
    await session.flush()
    await record(session, "follow_up.updated", follow_up, customer)
    return follow_up


async def delete_follow_up(
    session: AsyncSession, actor: Actor, follow_up_id: uuid.UUID, expected: int | None
) -> None:
    follow_up = await get_follow_up(session, actor, follow_up_id)
    ensure_version(follow_up, expected)
    customer = await session.get_one(Customer, follow_up.customer_id)
    events.record(
        session,
        "follow_up.deleted",
        follow_up,
        {"id": str(follow_up.id), "customer_id": str(customer.id)},
        scope=customer,
    )
    await session.delete(follow_up)
    await session.flush()
    if follow_up.status == FollowUpStatus.DONE:
        await refresh_last_follow_up(session, customer)
        await session.flush()
