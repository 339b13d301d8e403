"""Contracts: drafting from a won opportunity with gap-free numbering, terms, reading.
The review workflow is in ``contract_workflow``; collection and deliveries beside it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.errors import Conflict
from app.models.contracts import (
    Contract,
    ContractCounter,
    ContractCreate,
    ContractLine,
    ContractLineRead,
    ContractRead,
    ContractStatus,
    ContractUpdate,
)
from app.models.pipeline import Opportunity, Product, Stage
from app.models.quotes import QuoteLine
from app.models.types import utcnow
from app.pagination import paginate
from app.permissions import Actor
from app.services import department, names
from app.services.common import (
    apply_changes,
    contains_literally,
    ensure_version,
    get_in_scope,
    in_scope,
)
from app.services.opportunities import accepted_quote

CONTRACT_SORTS = {
    "created_at": Contract.created_at,
    "updated_at": Contract.updated_at,
    "amount": Contract.amount,
}
S = ContractStatus
# Payments are taken and deliveries made only while the contract runs.
ACTIVE = frozenset({S.SIGNED.value, S.IN_PROGRESS.value})
CLOSED = frozenset({S.COMPLETED.value, S.TERMINATED.value, S.CANCELLED.value})
_NAME_COLUMNS = names.name_columns(Contract, ContractRead)


def visible_contracts(actor: Actor) -> ColumnElement[bool]:
    return in_scope(Contract, actor)


def overdue_review(now: datetime) -> ColumnElement[bool]:
    return and_(Contract.status == S.UNDER_REVIEW, Contract.review_due_at < now)


def _is_review_overdue(contract: Contract, now: datetime) -> bool:
    return (
        contract.status == S.UNDER_REVIEW
        and contract.review_due_at is not None
        and contract.review_due_at < now
    )


async def to_reads(
    session: AsyncSession,
    contracts: Sequence[Contract],
    shown: Sequence[dict[str, Any]] | None = None,
) -> list[ContractRead]:
    """The API view of a page of contracts, their lines loaded in one query; ``shown``:
    each one's names, when read beside it."""
    if shown is None:
        shown = [await names.names_for(session, ContractRead, c) for c in contracts]
    ids = [c.id for c in contracts]
    lines: dict[uuid.UUID, list[ContractLineRead]] = {i: [] for i in ids}
    if ids:
        stmt = (
            select(ContractLine)
            .where(ContractLine.contract_id.in_(ids))
            .order_by(ContractLine.contract_id, ContractLine.position)
        )
        for line in (await session.scalars(stmt)).all():
            lines[line.contract_id].append(ContractLineRead.model_validate(line))
    now = utcnow()
    return [
        ContractRead.model_validate(
            {
                **c.model_dump(),
                **named,
                "lines": lines[c.id],
                "outstanding_amount": c.amount - c.paid_amount,
                "review_overdue": _is_review_overdue(c, now),
            }
        )
        for c, named in zip(contracts, shown, strict=True)
    ]


async def to_read(session: AsyncSession, contract: Contract) -> ContractRead:
    return (await to_reads(session, [contract]))[0]


# Numbering.


async def _next_number(session: AsyncSession, year: int) -> str:
    """HT-YYYY-NNNNN from the year's counter, incremented in the caller's transaction.

    The UPDATE locks the counter row until commit, so concurrent creations queue on it
    (SQLite writers queue on the database lock anyway); a rollback returns the number.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = ContractCounter.__table__
    await session.execute(
        insert(table)
        .values(year=year, last_number=0)
        .on_conflict_do_nothing(index_elements=["year"])
    )
    number = await session.scalar(
        update(table)
        .where(table.c.year == year)
        .values(last_number=table.c.last_number + 1)
        .returning(table.c.last_number)
    )
    return f"HT-{year}-{int(number):05d}"


# Reading.


async def get_contract(
    session: AsyncSession,
    actor: Actor,
    contract_id: uuid.UUID,
    *,
    for_update: bool = False,
    shown: bool = False,
) -> Contract:
    """The contract in scope (404 otherwise); ``shown``: with the names its answer shows,
    read in the same statement."""
    return await get_in_scope(
        session,
        Contract,
        contract_id,
        actor,
        name="contract",
        for_update=for_update,
        shown=ContractRead if shown else None,
    )


async def list_contracts(
    session: AsyncSession,
    actor: Actor,
    *,
    status: ContractStatus | None = None,
    owner_id: uuid.UUID | None = None,
    region_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    opportunity_id: uuid.UUID | None = None,
    review_overdue: bool | None = None,
    q: str | None = None,
    sort: str = "-created_at",
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[ContractRead], str | None]:
    stmt: Select[Any] = select(Contract, *_NAME_COLUMNS).where(visible_contracts(actor))
    for column, value in (
        (Contract.status, status),
        (Contract.owner_id, owner_id),
        (Contract.region_id, region_id),
        (Contract.customer_id, customer_id),
        (Contract.opportunity_id, opportunity_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if review_overdue is not None:
        overdue = overdue_review(utcnow())
        stmt = stmt.where(overdue if review_overdue else ~overdue)
    if q:
        stmt = stmt.where(contains_literally(func.upper(Contract.number), q.upper()))
    rows, next_cursor = await paginate(
        session,
        stmt,
        sort=sort,
        sortable=CONTRACT_SORTS,
        id_column=Contract.id,
        cursor=cursor,
        limit=limit,
    )
    fields = names.name_fields(ContractRead)
    shown = [dict(zip(fields, row[1:], strict=True)) for row in rows]
    return await to_reads(session, [row[0] for row in rows], shown), next_cursor


# Writing.


async def create_contract(session: AsyncSession, actor: Actor, data: ContractCreate) -> Contract:
    """Draft the contract of a won opportunity from its accepted quote."""
    # Locking the opportunity makes a second creation for it wait, then see the first.
    opp = await get_in_scope(
        session,
        Opportunity,
        data.opportunity_id,
        actor,
        name="opportunity",
        for_update=True,
    )
    if opp.stage != Stage.WON:
        raise Conflict(
            f"The opportunity is {opp.stage}; contracts are drafted from won opportunities.",
            reason="opportunity_not_won",
        )
    # A cancelled contract never bound anyone: the deal may be contracted afresh. The unique
    # index of live contracts per opportunity stands behind this check.
    existing = await session.scalar(
        select(Contract.id).where(Contract.opportunity_id == opp.id, Contract.status != S.CANCELLED)
    )
    if existing is not None:
        raise Conflict(
            "This opportunity has a live contract already.",
            reason="contract_exists",
            existing_id=str(existing),
        )
    quote = await accepted_quote(session, opp)
    if quote is None:
        raise Conflict("The opportunity has no accepted quote.", reason="quote_accepted")
    await department.refuse_past(
        session, ["body", "delivery_date"], data.delivery_date, "A new contract delivers"
    )
    settings = await department.load(session)
    sent = data.model_dump(exclude_unset=True)
    contract = Contract(
        number=await _next_number(session, department.today(settings).year),
        opportunity_id=opp.id,
        quote_id=quote.id,
        customer_id=opp.customer_id,
        owner_id=opp.owner_id,
        region_id=opp.region_id,
        amount=quote.total,
        delivery_date=data.delivery_date,
        payment_terms=sent.get("payment_terms", quote.payment_terms),
        delivery_terms=sent.get("delivery_terms", quote.delivery_terms),
        warranty=data.warranty,
    )
    session.add(contract)
    await session.flush()
    quote_lines = (
        await session.execute(
            select(QuoteLine, Product)
            .join(Product, Product.id == QuoteLine.product_id)
            .where(QuoteLine.quote_id == quote.id)
            .order_by(QuoteLine.position)
        )
    ).all()
    for line, product in quote_lines:
        session.add(
            ContractLine(
                contract_id=contract.id,
                position=line.position,
                product_id=product.id,
                sku=product.sku,
                name=product.name,
                unit=product.unit,
                quantity=line.quantity,
                unit_price=line.unit_price,
                list_price=line.list_price,
                discount_percent=line.discount_percent,
                line_total=line.line_total,
            )
        )
    await session.flush()
    events.record(session, "contract.created", contract, await to_read(session, contract))
    return contract


def refuse_unless_draft(contract: Contract, what: str) -> None:
    if contract.status != S.DRAFT:
        raise Conflict(
            f"The contract is {contract.status}; {what} change only in draft.",
            reason="contract_not_draft",
        )


async def update_contract(
    session: AsyncSession,
    actor: Actor,
    contract_id: uuid.UUID,
    data: ContractUpdate,
    expected: int | None,
) -> Contract:
    contract = await get_contract(session, actor, contract_id, for_update=True, shown=True)
    ensure_version(contract, expected)
    refuse_unless_draft(contract, "terms")
    apply_changes(contract, data)
    if session.is_modified(contract):
        await session.flush()
        events.record(session, "contract.updated", contract, await to_read(session, contract))
    return contract
