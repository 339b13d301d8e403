"""Collection (回款): the payment plan, payments against it, and receivables.

Money is Decimal end to end; sums that decide anything are added in Python, never by SQLite's
floating-point SUM. A payment locks its contract's row first, so concurrent payments of one
contract queue and none can pay more than is owed.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app import audit, events
from app.errors import BadRequest, Conflict, ValidationFailed
from app.models.contracts import (
    AllocationRead,
    Contract,
    Installment,
    InstallmentCreate,
    InstallmentRead,
    InstallmentStatus,
    Payment,
    PaymentAllocation,
    PaymentCreate,
    PaymentRead,
    ReceivableRead,
)
from app.models.customers import Customer, FollowUpKind, FollowUpStatus
from app.models.types import utcnow
from app.pagination import paginate
from app.permissions import Actor
from app.services import department, follow_ups, names
from app.services.common import ensure_version
from app.services.contract_workflow import complete_if_done, start_if_signed
from app.services.contracts import (
    ACTIVE,
    get_contract,
    refuse_unless_draft,
    to_read,
    visible_contracts,
)

ZERO = Decimal("0.00")
PAYMENT_SORTS = {"created_at": Payment.created_at}


def _status(paid: Decimal, amount: Decimal) -> InstallmentStatus:
    if paid >= amount:
        return InstallmentStatus.PAID
    return InstallmentStatus.PARTIALLY_PAID if paid > 0 else InstallmentStatus.OPEN


def installment_read(installment: Installment, today: date) -> InstallmentRead:
    outstanding = installment.amount - installment.paid_amount
    return InstallmentRead.model_validate(
        {
            **installment.model_dump(),
            "outstanding_amount": outstanding,
            "overdue": outstanding > 0 and installment.due_date < today,
        }
    )


async def installment_reads(
    session: AsyncSession, installments: Sequence[Installment]
) -> list[InstallmentRead]:
    today = department.today(await department.load(session))
    return [installment_read(i, today) for i in installments]


async def _installments(session: AsyncSession, contract: Contract) -> list[Installment]:
    """The plan, oldest due first (the order payments fill it)."""
    stmt = (
        select(Installment)
        .where(Installment.contract_id == contract.id)
        .order_by(Installment.due_date, Installment.position, Installment.id)
    )
    return list((await session.scalars(stmt)).all())


async def list_installments(
    session: AsyncSession, actor: Actor, contract_id: uuid.UUID
) -> list[InstallmentRead]:
    contract = await get_contract(session, actor, contract_id)
    return await installment_reads(session, await _installments(session, contract))


async def _plan_changed(session: AsyncSession, contract: Contract) -> None:
    # The plan lives in its own table: the contract's version moves too, so a submission
    # made against the plan a client saw fails with 412 once the plan changed.
    contract.updated_at = utcnow()
    await session.flush()
    events.record(session, "contract.updated", contract, await to_read(session, contract))


def _refuse_excess(contract: Contract, planned: Decimal) -> None:
    if planned > contract.amount:
        raise Conflict(
            f"The installments would add up to {planned}, above the contract amount "
            f"{contract.amount}.",
            reason="plan_exceeds_amount",
        )


_FALLS_DUE = "A new installment falls due"


async def add_installment(
    session: AsyncSession,
    actor: Actor,
    contract_id: uuid.UUID,
    data: InstallmentCreate,
    expected: int | None,
) -> Installment:
    contract = await get_contract(session, actor, contract_id, for_update=True)
    ensure_version(contract, expected)
    refuse_unless_draft(contract, "installments")
    await department.refuse_past(session, ["body", "due_date"], data.due_date, _FALLS_DUE)
    plan = await _installments(session, contract)
    _refuse_excess(contract, sum((i.amount for i in plan), ZERO) + data.amount)
    installment = Installment(
        contract_id=contract.id,
        position=max((i.position for i in plan), default=-1) + 1,
        due_date=data.due_date,
        amount=data.amount,
    )
    session.add(installment)
    await _plan_changed(session, contract)
    return installment


async def replace_installments(
    session: AsyncSession,
    actor: Actor,
    contract_id: uuid.UUID,
    data: Sequence[InstallmentCreate],
    expected: int | None,
) -> list[InstallmentRead]:
    """Put the whole plan at once (an empty list clears it)."""
    contract = await get_contract(session, actor, contract_id, for_update=True)
    ensure_version(contract, expected)
    refuse_unless_draft(contract, "installments")
    for position, item in enumerate(data):
        loc = ["body", "installments", position, "due_date"]
        await department.refuse_past(session, loc, item.due_date, _FALLS_DUE)
    _refuse_excess(contract, sum((i.amount for i in data), ZERO))
    for old in await _installments(session, contract):
        await session.delete(old)
    await session.flush()
    for position, item in enumerate(data):
        session.add(
            Installment(
                contract_id=contract.id,
                position=position,
                due_date=item.due_date,
                amount=item.amount,
            )
        )
    await _plan_changed(session, contract)
    return await installment_reads(session, await _installments(session, contract))


# Payments.


async def _allocations(
    session: AsyncSession, payment_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[AllocationRead]]:
    found: dict[uuid.UUID, list[AllocationRead]] = {i: [] for i in payment_ids}
    if payment_ids:
        stmt = (
            select(PaymentAllocation, Installment.due_date)
            .join(Installment, Installment.id == PaymentAllocation.installment_id)
            .where(PaymentAllocation.payment_id.in_(payment_ids))
            .order_by(Installment.due_date, Installment.position)
        )
        for allocation, _ in (await session.execute(stmt)).all():
            found[allocation.payment_id].append(AllocationRead.model_validate(allocation))
    return found


async def payment_reads(session: AsyncSession, payments: Sequence[Payment]) -> list[PaymentRead]:
    allocations = await _allocations(session, [p.id for p in payments])
    return [
        PaymentRead.model_validate({**p.model_dump(), "allocations": allocations[p.id]})
        for p in payments
    ]


async def list_payments(
    session: AsyncSession,
    actor: Actor,
    contract_id: uuid.UUID,
    *,
    sort: str = "created_at",
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[PaymentRead], str | None]:
    contract = await get_contract(session, actor, contract_id)
    stmt: Select[Any] = select(Payment).where(Payment.contract_id == contract.id)
    rows, next_cursor = await paginate(
        session,
        stmt,
        sort=sort,
        sortable=PAYMENT_SORTS,
        id_column=Payment.id,
        cursor=cursor,
        limit=limit,
    )
    return await payment_reads(session, rows), next_cursor


def _allocate(
    plan: Sequence[Installment], amount: Decimal, named: Installment | None
) -> list[tuple[Installment, Decimal]]:
    """Split ``amount`` over the named installment, or the oldest open ones first.
    Refuses (409 ``overpayment``) what would pay more than is owed."""
    targets = [named] if named is not None else list(plan)
    owed = sum((i.amount - i.paid_amount for i in targets), ZERO)
    if amount > owed:
        where = "this installment" if named is not None else "the contract"
        raise Conflict(
            f"The payment of {amount} is more than the {owed} still owed on {where}.",
            reason="overpayment",
            outstanding_amount=str(owed),
        )
    shares: list[tuple[Installment, Decimal]] = []
    left = amount
    for installment in targets:
        if left <= 0:
            break
        share = min(left, installment.amount - installment.paid_amount)
        if share > 0:
            shares.append((installment, share))
            left -= share
    return shares


async def record_payment(
    session: AsyncSession, actor: Actor, contract_id: uuid.UUID, data: PaymentCreate
) -> Payment:
    contract = await get_contract(session, actor, contract_id, for_update=True)
    if contract.status not in ACTIVE:
        raise Conflict(
            f"The contract is {contract.status}; payments are taken once it is signed and "
            "until it ends.",
            reason="contract_not_active",
        )
    settings = await department.load(session)
    if data.received_on > department.today(settings):
        raise ValidationFailed(["body", "received_on"], "A payment cannot be received later.")
    signed_on = department.local_date(settings, contract.signed_at)
    if signed_on is not None and data.received_on < signed_on:
        # Money before the signature would rewrite the figures of a period already closed.
        raise ValidationFailed(
            ["body", "received_on"],
            f"A payment cannot be received before the contract was signed ({signed_on}).",
            "before_signing",
        )
    plan = await _installments(session, contract)
    named = None
    if data.installment_id is not None:
        named = next((i for i in plan if i.id == data.installment_id), None)
        if named is None:
            raise ValidationFailed(
                ["body", "installment_id"], "No installment with this id in this contract."
            )
    shares = _allocate(plan, data.amount, named)
    payment = Payment(
        contract_id=contract.id,
        owner_id=contract.owner_id,
        region_id=contract.region_id,
        installment_id=data.installment_id,
        amount=data.amount,
        received_on=data.received_on,
        method=data.method,
        reference=data.reference,
        recorded_by_id=actor.id,
    )
    session.add(payment)
    await session.flush()
    for installment, share in shares:
        installment.paid_amount += share
        installment.status = _status(installment.paid_amount, installment.amount)
        session.add(
            PaymentAllocation(payment_id=payment.id, installment_id=installment.id, amount=share)
        )
    contract.paid_amount += data.amount
    await session.flush()
    read = (await payment_reads(session, [payment]))[0]
    events.record(
        session,
        "payment.received",
        payment,
        {**read.model_dump(mode="json"), "contract_number": contract.number},
        scope=contract,
    )
    await start_if_signed(session, actor, contract)
    await complete_if_done(session, actor, contract)
    return payment


# Collection (催收): installments that fall overdue.

OVERDUE_BATCH = 500  # per sweep; the next sweep, a minute later, takes the rest


async def flag_overdue_installments(session: AsyncSession, now: datetime | None = None) -> int:
    """Report each installment of a running contract that fell overdue, once: plan a
    collection call for the contract's owner and record ``installment.overdue``.

    Run by the worker. The mark is a conditional UPDATE (the installment's version stays),
    and only the worker whose UPDATE took it reports, however many sweep at once.
    """
    now = now or utcnow()
    settings = await department.load(session)
    today = department.today(settings)
    stmt = (
        select(Installment, Contract)
        .join(Contract, Contract.id == Installment.contract_id)
        .where(
            # As the partial index ix_installments_overdue_unreported says it, so it serves.
            Installment.overdue_notified_at.is_(None),
            Installment.status != literal_column("'paid'"),
            Installment.due_date < today,
            Contract.status.in_(ACTIVE),
        )
        .order_by(Installment.due_date, Installment.id)
        .limit(OVERDUE_BATCH)
        .with_for_update(skip_locked=True, of=Installment)  # SQLite renders no FOR UPDATE
    )
    reported = 0
    for installment, contract in (await session.execute(stmt)).all():
        marked: Any = await session.execute(
            update(Installment)
            .where(Installment.id == installment.id, Installment.overdue_notified_at.is_(None))
            .values(overdue_notified_at=now, updated_at=Installment.updated_at)
            .execution_options(synchronize_session=False)
        )
        if marked.rowcount != 1:
            continue
        set_committed_value(installment, "overdue_notified_at", now)
        # A Core UPDATE passes the audit hook by, so the entry is written here.
        audit.record(
            session,
            installment,
            "update",
            {"overdue_notified_at": None},
            {"overdue_notified_at": now.isoformat()},
        )
        outstanding = installment.amount - installment.paid_amount
        customer = await session.get_one(Customer, contract.customer_id)
        call = follow_ups.new_follow_up(
            customer,
            owner_id=contract.owner_id,
            kind=FollowUpKind.CALL,
            status=FollowUpStatus.PLANNED,
            due_at=now,
            summary=f"Collection (催收): {outstanding} of contract {contract.number} was due "
            f"on {installment.due_date}.",
            contract_id=contract.id,
            opportunity_id=contract.opportunity_id,
        )
        session.add(call)
        await session.flush()
        await follow_ups.record(session, "follow_up.created", call, customer)
        read = installment_read(installment, today)
        events.record(
            session,
            "installment.overdue",
            installment,
            {
                **read.model_dump(mode="json"),
                "contract_number": contract.number,
                "customer_id": str(contract.customer_id),
                "owner_id": str(contract.owner_id),
                "days_overdue": (today - installment.due_date).days,
                "follow_up_id": str(call.id),
            },
            scope=contract,
        )
        reported += 1
    return reported


# Receivables.


def _receivable_cursor(due: date, row_id: uuid.UUID) -> str:
    raw = json.dumps([due.isoformat(), str(row_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# The contract's customer's and owner's names, in ReceivableRead's order.
_RECEIVABLE_NAMES = names.name_columns(Contract, ReceivableRead)


def _receivable_position(cursor: str) -> tuple[date, uuid.UUID]:
    # Dates are not among the generic keyset's column types; receivables page by due date.
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        due, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return date.fromisoformat(due), uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error, AttributeError) as exc:
        raise BadRequest(
            "The cursor is malformed; use the next_cursor of a previous page."
        ) from exc


async def list_receivables(
    session: AsyncSession,
    actor: Actor,
    *,
    overdue: bool | None = None,
    owner_id: uuid.UUID | None = None,
    region_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    contract_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[ReceivableRead], str | None]:
    """Open installments of running contracts in the caller's scope, oldest due first."""
    today = department.today(await department.load(session))
    stmt = (
        select(Installment, Contract, *_RECEIVABLE_NAMES)
        .join(Contract, Contract.id == Installment.contract_id)
        .where(
            visible_contracts(actor),
            Contract.status.in_(ACTIVE),
            Installment.status != InstallmentStatus.PAID,
        )
    )
    for column, value in (
        (Contract.owner_id, owner_id),
        (Contract.region_id, region_id),
        (Contract.customer_id, customer_id),
        (Contract.id, contract_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if overdue is True:
        stmt = stmt.where(Installment.due_date < today)
    elif overdue is False:
        stmt = stmt.where(Installment.due_date >= today)
    if cursor:
        due, row_id = _receivable_position(cursor)
        stmt = stmt.where(
            or_(
                Installment.due_date > due,
                and_(Installment.due_date == due, Installment.id > row_id),
            )
        )
    stmt = stmt.order_by(Installment.due_date, Installment.id).limit(limit + 1)
    rows = (await session.execute(stmt)).all()
    items = []
    for installment, contract, customer_name, owner_name in rows[:limit]:
        outstanding = installment.amount - installment.paid_amount
        late = installment.due_date < today
        items.append(
            ReceivableRead(
                installment_id=installment.id,
                contract_id=contract.id,
                contract_number=contract.number,
                customer_id=contract.customer_id,
                customer_name=customer_name,
                owner_id=contract.owner_id,
                owner_name=owner_name,
                region_id=contract.region_id,
                due_date=installment.due_date,
                amount=installment.amount,
                paid_amount=installment.paid_amount,
                outstanding_amount=outstanding,
                status=InstallmentStatus(installment.status),
                overdue=late,
                days_overdue=(today - installment.due_date).days if late else 0,
            )
        )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1][0]
        next_cursor = _receivable_cursor(last.due_date, last.id)
    return items, next_cursor
