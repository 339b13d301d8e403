"""Customers as the API shows them: the derived status, one customer, the filtered list.

Reads only; the rules that change customers are in ``app.services.customers``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.answers import check_plain, values_of
from app.db import driver_connection
from app.models.customers import (
    Classification,
    Customer,
    CustomerRead,
    CustomerStatus,
    name_key,
)
from app.models.people import Role
from app.models.types import utcnow
from app.pagination import (
    Position,
    cut_page,
    keyset_page,
    keyset_params,
    keyset_template,
    paginate,
    position_of,
)
from app.permissions import Actor, scope_params
from app.reads import Read
from app.services import department, names
from app.services.common import (
    answer_columns,
    contains_literally,
    in_scope,
    in_scope_template,
    matches_text,
    read_in_scope,
)

_READ_COLUMNS = answer_columns(Customer, CustomerRead)
_READ_NAMES = check_plain(CustomerRead)
CUSTOMER_SORTS = {
    "created_at": Customer.created_at,
    "updated_at": Customer.updated_at,
    "name": Customer.name,
    "follow_up_due_at": Customer.follow_up_due_at,
}


def visible_customers(actor: Actor) -> ColumnElement[bool]:
    """Live customers in the actor's scope."""
    return in_scope(Customer, actor)


class StatusFacts(Protocol):
    """What the derived status needs: a customer, its read schema or a row of its columns."""

    status: str
    last_follow_up_at: datetime | None
    created_at: datetime


def dormant_cutoff(settings: department.DepartmentSettings, now: datetime) -> datetime:
    """Customers last followed up (or created) before this are ``dormant``."""
    return now - timedelta(days=settings.dormant_after_days)


def status_at(
    stored: str, last_follow_up_at: datetime | None, created_at: datetime, cutoff: datetime
) -> CustomerStatus:
    """``dormant`` is derived: no follow-up (or creation) since ``cutoff``."""
    if stored == CustomerStatus.LOST:
        return CustomerStatus.LOST
    if (last_follow_up_at or created_at) < cutoff:
        return CustomerStatus.DORMANT
    return CustomerStatus(stored)


def effective_status(
    settings: department.DepartmentSettings, customer: StatusFacts, now: datetime
) -> CustomerStatus:
    return status_at(
        customer.status,
        customer.last_follow_up_at,
        customer.created_at,
        dormant_cutoff(settings, now),
    )


async def to_read(session: AsyncSession, customer: Customer) -> CustomerRead:
    settings = await department.load(session)
    shown = await names.names_for(session, CustomerRead, customer)
    read = CustomerRead.model_validate({**customer.model_dump(), **shown})
    read.status = effective_status(settings, customer, utcnow())
    return read


def _status_filter(
    settings: department.DepartmentSettings, status: CustomerStatus, now: datetime
) -> ColumnElement[bool]:
    last = func.coalesce(Customer.last_follow_up_at, Customer.created_at)
    cutoff = now - timedelta(days=settings.dormant_after_days)
    if status == CustomerStatus.LOST:
        return Customer.status == CustomerStatus.LOST
    if status == CustomerStatus.DORMANT:
        return and_(Customer.status != CustomerStatus.LOST, last < cutoff)
    return and_(Customer.status == status, last >= cutoff)


async def list_customers(
    session: AsyncSession,
    actor: Actor,
    *,
    owner_id: uuid.UUID | None = None,
    region_id: uuid.UUID | None = None,
    classification: Classification | None = None,
    status: CustomerStatus | None = None,
    overdue: bool | None = None,
    q: str | None = None,
    sort: str = "-created_at",
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the customers ``actor`` sees, as ``CustomerRead``'s values, and the cursor
    of the next page."""
    settings = await department.load(session)
    now = utcnow()
    key = name_key(q) if q else ""
    rows: Sequence[Any]
    filters = (owner_id, region_id, classification, status, overdue)
    if not q and all(value is None for value in filters):
        # The list every app opens first, and pages on: a statement built once per role and
        # order, run on the driver connection. Building the select, its cache key and its
        # execution through the session were a fifth of the route's CPU.
        params = keyset_params(
            cursor, sort=sort, sortable=CUSTOMER_SORTS, id_column=Customer.id, limit=limit
        )
        page = _unfiltered_page(actor.role, sort, position_of(params))
        found = await page.rows(await driver_connection(session), {**params, **scope_params(actor)})
        rows, next_cursor = cut_page(found, limit, sort, _cursor_key(sort))
    else:
        # The answer's columns, not the entity: a page of rows, without 50 ORM objects built
        # and then read back attribute by attribute.
        stmt: Select[Any] = select(*_READ_COLUMNS).where(visible_customers(actor))
        if owner_id is not None:
            stmt = stmt.where(Customer.owner_id == owner_id)
        if region_id is not None:
            stmt = stmt.where(Customer.region_id == region_id)
        if classification is not None:
            stmt = stmt.where(Customer.classification == classification)
        if status is not None:
            stmt = stmt.where(_status_filter(settings, status, now))
        if overdue is True:
            stmt = stmt.where(Customer.follow_up_due_at < now)
        elif overdue is False:
            stmt = stmt.where(
                or_(Customer.follow_up_due_at.is_(None), Customer.follow_up_due_at >= now)
            )
        if key:
            stmt = stmt.where(contains_literally(Customer.name_key, key))
        elif q:
            # Only punctuation and spaces, which the key leaves out: the names as written,
            # so "%" finds the names with a "%" in them, not every name.
            stmt = stmt.where(matches_text(q, Customer.name))
        if key and session.get_bind().dialect.name == "postgresql":
            # A search: the page's ids first, from an index that carries the name (the rep's
            # or the region's live customers newest first, ix_customers_*_search), then their
            # rows. Asked for whole rows at once, PostgreSQL read a rep's whole book from the
            # table, or walked every live customer newest first for a region (25,000 rows for
            # a common word at a million customers), instead of the index entries (2,000 or
            # 2,500).
            ids = keyset_page(
                stmt.with_only_columns(Customer.id),
                sort=sort,
                sortable=CUSTOMER_SORTS,
                id_column=Customer.id,
                cursor=cursor,
            ).limit(limit + 1)
            stmt = select(*_READ_COLUMNS).where(Customer.id.in_(ids))
        rows, next_cursor = await paginate(
            session,
            stmt,
            sort=sort,
            sortable=CUSTOMER_SORTS,
            id_column=Customer.id,
            cursor=cursor,
            limit=limit,
        )
    # The answers' values for ``app.answers.page_response`` (the columns are
    # ``CustomerRead``'s fields, typed by the table: nothing to validate), with the stored
    # status replaced by the derived one.
    cutoff = dormant_cutoff(settings, now)
    page = values_of(_READ_NAMES, rows)
    for values in page:
        values["status"] = status_at(
            values["status"], values["last_follow_up_at"], values["created_at"], cutoff
        )
    return page, next_cursor


@cache
def _unfiltered_page(role: Role, sort: str, position: Position) -> Read:
    """A page of the customers a caller of ``role`` sees, in ``sort`` order (after a cursor
    or from the start): ``visible_customers`` with the caller's scope bound."""
    stmt = select(*_READ_COLUMNS).where(in_scope_template(Customer, role))
    return Read(
        keyset_template(
            stmt, sort=sort, sortable=CUSTOMER_SORTS, id_column=Customer.id, position=position
        )
    )


@cache
def _cursor_key(sort: str) -> Callable[[Sequence[Any]], tuple[Any, Any]]:
    """A row's sort value and id, by their places among the answer's columns."""
    value_at = _READ_NAMES.index(sort.lstrip("-"))
    id_at = _READ_NAMES.index("id")
    return lambda row: (row[value_at], row[id_at])


async def read_customer(
    session: AsyncSession, actor: Actor, customer_id: uuid.UUID
) -> CustomerRead:
    """The customer as the API shows it, read without loading the ORM entity."""
    settings = await department.load(session)
    read = await read_in_scope(session, Customer, CustomerRead, customer_id, actor, name="customer")
    read.status = effective_status(settings, read, utcnow())
    return read
