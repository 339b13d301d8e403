"""The contract workflow: review with working-hour due times, signing, termination,
cancellation, and what payments and deliveries set going (in progress, completed).

Who reviews: the region's manager; above the director threshold the director after the
manager. The contract stays ``under_review`` until its last step approves; ``review_step``
says whose turn it is and ``review_due_at`` when that turn is due.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.business_hours import add_working_hours
from app.models.contracts import (
    Contract,
    ContractStatus,
    Delivery,
    Installment,
    InstallmentStatus,
    ReviewStep,
)
from app.models.customers import (
    Customer,
    CustomerStatus,
    FollowUpKind,
    FollowUpStatus,
)
from app.models.platform import StateChange
from app.models.types import utcnow
from app.permissions import Actor
from app.services import customers as customer_service
from app.services import department, follow_ups
from app.services.contracts import (
    CLOSED,
    S,
    get_contract,
    overdue_review,
    to_read,
)
from app.workflow import MANAGERS, MoveOption, Rule, Workflow

# Gates, authorities and effects of the review workflow.


async def plan_adds_up(
    session: AsyncSession, contract: Contract, _: Mapping[str, Any]
) -> str | None:
    amounts = (
        await session.scalars(
            select(Installment.amount).where(Installment.contract_id == contract.id)
        )
    ).all()
    if not amounts:
        return "Add the payment plan (installments) first."
    # Summed here, in Decimal: SQLite would add the amounts as floating point.
    planned = sum(amounts, Decimal("0.00"))
    if planned != contract.amount:
        return f"The installments add up to {planned}, not the contract amount {contract.amount}."
    return None


def _reviewer(actor: Actor, contract: Contract) -> str | None:
    if contract.review_step == ReviewStep.DIRECTOR:
        return None if actor.is_director else "The director reviews this contract now."
    if actor.is_manager and actor.region_id == contract.region_id:
        return None
    return "The region's manager reviews this contract first."


def _start_step(
    contract: Contract, step: ReviewStep, settings: department.DepartmentSettings
) -> None:
    now = utcnow()
    contract.review_step = step
    contract.review_started_at = now
    contract.review_due_at = add_working_hours(
        now, settings.contract_review_hours, settings.business_hours
    )
    contract.review_overdue_notified_at = None


def _end_review(contract: Contract) -> None:
    contract.review_step = None
    contract.review_started_at = contract.review_due_at = None
    contract.review_overdue_notified_at = None


async def _submitted(
    session: AsyncSession, actor: Actor, contract: Contract, _: Mapping[str, Any]
) -> None:
    settings = await department.load(session)
    contract.submitted_at, contract.submitted_by_id = utcnow(), actor.id
    contract.director_review = contract.amount > settings.contract_director_threshold
    contract.manager_approved_at = contract.manager_approved_by_id = None
    contract.approved_at = contract.approved_by_id = contract.decision_note = None
    _start_step(contract, ReviewStep.MANAGER, settings)


async def _manager_approved(
    session: AsyncSession, actor: Actor, contract: Contract, move: Mapping[str, Any]
) -> None:
    """The manager's approval of a large contract hands it to the director."""
    contract.manager_approved_at, contract.manager_approved_by_id = utcnow(), actor.id
    contract.decision_note = move.get("note")
    _start_step(contract, ReviewStep.DIRECTOR, await department.load(session))


async def _approved(
    session: AsyncSession, actor: Actor, contract: Contract, move: Mapping[str, Any]
) -> None:
    now = utcnow()
    if contract.review_step == ReviewStep.MANAGER:
        contract.manager_approved_at, contract.manager_approved_by_id = now, actor.id
    contract.approved_at, contract.approved_by_id = now, actor.id
    contract.decision_note = move.get("note")
    _end_review(contract)


async def _rejected(
    session: AsyncSession, actor: Actor, contract: Contract, move: Mapping[str, Any]
) -> None:
    contract.decision_note = move.get("note")
    _end_review(contract)


async def _cancelled(
    session: AsyncSession, actor: Actor, contract: Contract, _: Mapping[str, Any]
) -> None:
    # Cancelled before signing only: the contract never counted towards the customer's
    # suggested class, so there is nothing to recompute.
    contract.cancelled_at = utcnow()
    _end_review(contract)


async def _terminated(
    session: AsyncSession, actor: Actor, contract: Contract, move: Mapping[str, Any]
) -> None:
    contract.terminated_at, contract.termination_reason = utcnow(), move["reason"]
    # A terminated contract's revenue no longer counts towards the customer's suggestion.
    await session.flush()
    await customer_service.reclassify(
        session, await customer_service.locked_customer(session, contract.customer_id)
    )


async def _signed(
    session: AsyncSession, actor: Actor, contract: Contract, _: Mapping[str, Any]
) -> None:
    contract.signed_at = utcnow()
    await session.flush()  # the classification below counts this contract as signed
    customer = await customer_service.locked_customer(session, contract.customer_id)
    if customer.status == CustomerStatus.PROSPECT:
        customer.status = CustomerStatus.ACTIVE  # the first signed contract
    await customer_service.reclassify(session, customer)


async def _completed(
    session: AsyncSession, actor: Actor, contract: Contract, _: Mapping[str, Any]
) -> None:
    """Completion plans the return visit (在客户购买产品后的一周内进行回访)."""
    settings = await department.load(session)
    now = contract.completed_at = utcnow()
    customer = await session.get_one(Customer, contract.customer_id)
    visit = follow_ups.new_follow_up(
        customer,
        owner_id=contract.owner_id,
        kind=FollowUpKind.RETURN_VISIT,
        status=FollowUpStatus.PLANNED,
        due_at=now + timedelta(days=settings.return_visit_within_days),
        summary=f"Return visit after contract {contract.number}: satisfaction and needs.",
        contract_id=contract.id,
        opportunity_id=contract.opportunity_id,
    )
    session.add(visit)
    await session.flush()
    await follow_ups.record(session, "follow_up.created", visit, customer)


_CANCEL = Rule(effect=_cancelled, event="contract.cancelled")
_TERMINATE = Rule(
    roles=MANAGERS, needs=("reason",), effect=_terminated, event="contract.terminated"
)

CONTRACT_TRANSITIONS: dict[str, dict[str, Rule]] = {
    S.DRAFT: {
        S.UNDER_REVIEW: Rule(gates=(plan_adds_up,), effect=_submitted, event="contract.submitted"),
        S.CANCELLED: _CANCEL,
    },
    S.UNDER_REVIEW: {
        S.APPROVED: Rule(
            roles=MANAGERS, authority=_reviewer, effect=_approved, event="contract.approved"
        ),
        S.REJECTED: Rule(
            roles=MANAGERS,
            authority=_reviewer,
            needs=("note",),
            effect=_rejected,
            event="contract.rejected",
        ),
        S.CANCELLED: _CANCEL,
    },
    S.REJECTED: {S.DRAFT: Rule(), S.CANCELLED: _CANCEL},
    S.APPROVED: {S.SIGNED: Rule(effect=_signed, event="contract.signed"), S.CANCELLED: _CANCEL},
    # Also taken by itself on the first delivery or payment of a signed contract.
    S.SIGNED: {S.IN_PROGRESS: Rule(), S.TERMINATED: _TERMINATE},
    # ``completed`` is never taken by hand: see AUTOMATIC_TRANSITIONS.
    S.IN_PROGRESS: {S.TERMINATED: _TERMINATE},
}

# A review step that is not the last: the manager approves a contract above the threshold,
# which stays under review, now the director's. Asked for as ``to: approved``.
REVIEW_STEP_TRANSITIONS: dict[str, dict[str, Rule]] = {
    S.UNDER_REVIEW: {
        S.UNDER_REVIEW: Rule(
            roles=MANAGERS,
            authority=_reviewer,
            effect=_manager_approved,
            event="contract.manager_approved",
        )
    }
}

# What the system does by itself when the last delivery is confirmed and the last
# installment paid, whichever comes last.
AUTOMATIC_TRANSITIONS: dict[str, dict[str, Rule]] = {
    S.IN_PROGRESS: {S.COMPLETED: Rule(effect=_completed, event="contract.completed")}
}


class ContractMoveOption(MoveOption[ContractStatus, Literal["note", "reason"]]):
    """A move a contract may make now."""


WORKFLOW: Workflow[Contract] = Workflow(
    entity_type="contract",
    state_field="status",
    table=CONTRACT_TRANSITIONS,
    to_read=to_read,
    option=ContractMoveOption,
    default_event="contract.status_changed",
    closed_states=CLOSED,
)
REVIEW_STEP: Workflow[Contract] = Workflow(
    entity_type="contract", state_field="status", table=REVIEW_STEP_TRANSITIONS, to_read=to_read
)
AUTOMATIC: Workflow[Contract] = Workflow(
    entity_type="contract",
    state_field="status",
    table=AUTOMATIC_TRANSITIONS,
    to_read=to_read,
    default_event="contract.status_changed",
)


async def transition(
    session: AsyncSession,
    actor: Actor,
    contract_id: uuid.UUID,
    to: str,
    fields: Mapping[str, Any],
    expected: int | None,
) -> Contract:
    contract = await get_contract(session, actor, contract_id, for_update=True, shown=True)
    if (
        to == S.APPROVED
        and contract.status == S.UNDER_REVIEW
        and contract.review_step == ReviewStep.MANAGER
        and contract.director_review
        # Anyone else is refused by the main table, in its words ("approved", not a step).
        and actor.role in MANAGERS
        and _reviewer(actor, contract) is None
    ):
        return await REVIEW_STEP.transition(
            session, actor, contract, S.UNDER_REVIEW, fields, expected
        )
    return await WORKFLOW.transition(session, actor, contract, to, fields, expected)


async def history(
    session: AsyncSession, actor: Actor, contract_id: uuid.UUID
) -> Sequence[StateChange]:
    return await WORKFLOW.history(session, await get_contract(session, actor, contract_id))


# What payments and deliveries set going.


async def start_if_signed(session: AsyncSession, actor: Actor, contract: Contract) -> None:
    """A signed contract is in progress from its first delivery or payment."""
    if contract.status == S.SIGNED:
        note = "Delivery or collection started."
        await WORKFLOW.transition(session, actor, contract, S.IN_PROGRESS, {"note": note}, None)


async def complete_if_done(session: AsyncSession, actor: Actor, contract: Contract) -> bool:
    """Complete a running contract whose deliveries are all confirmed and installments all
    paid (at least one of each). The caller holds the contract's row lock, so of a payment
    and a confirmation arriving together the later one sees both."""
    if contract.status != S.IN_PROGRESS:
        return False
    statuses = (
        await session.scalars(
            select(Installment.status).where(Installment.contract_id == contract.id)
        )
    ).all()
    confirmations = (
        await session.scalars(
            select(Delivery.confirmed_on).where(Delivery.contract_id == contract.id)
        )
    ).all()
    if not statuses or not confirmations:
        return False
    if any(s != InstallmentStatus.PAID for s in statuses) or None in confirmations:
        return False
    if contract.paid_amount != contract.amount:
        return False
    note = "Delivered, confirmed and paid in full."
    await AUTOMATIC.transition(session, actor, contract, S.COMPLETED, {"note": note}, None)
    return True


async def flag_overdue_reviews(session: AsyncSession, now: datetime | None = None) -> int:
    """Record ``contract.review_overdue`` once per review step past its due time.

    Run by the worker. The mark is written with a conditional UPDATE (not through the ORM,
    so the contract's version and the client's ETag stay as they were), and only the
    worker whose UPDATE took the mark records the event.
    """
    now = now or utcnow()
    stmt = select(Contract).where(
        overdue_review(now), Contract.review_overdue_notified_at.is_(None)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    table = Contract.__table__
    flagged = 0
    for contract in (await session.scalars(stmt)).all():
        marked = await session.execute(
            update(table)
            .where(
                table.c.id == contract.id,
                table.c.status == S.UNDER_REVIEW,
                table.c.review_overdue_notified_at.is_(None),
            )
            .values(review_overdue_notified_at=now)
        )
        if marked.rowcount != 1:  # type: ignore[attr-defined]
            continue
        read = await to_read(session, contract)
        events.record(session, "contract.review_overdue", contract, read, actor_id=None)
        flagged += 1
    return flagged
