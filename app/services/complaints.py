"""Complaints: intake, scope, the handling workflow, handler reassignment, progress updates.

SLA due times, breaches and escalation live in ``complaint_sla``; every read and change here
gives a breached complaint its escalation at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit, events
from app.errors import Conflict, Forbidden, ValidationFailed
from app.models.complaints import (
    Complaint,
    ComplaintCreate,
    ComplaintProgress,
    ComplaintProgressCreate,
    ComplaintProgressRead,
    ComplaintRead,
    ComplaintStatus,
    ComplaintUpdate,
    Severity,
)
from app.models.contracts import Contract
from app.models.customers import Customer
from app.models.people import Role, User
from app.models.types import utcnow
from app.pagination import paginate
from app.permissions import Actor, Permission, scope_filter
from app.services import complaint_sla as sla
from app.services import department, names
from app.services.common import apply_changes, ensure_version, get_visible
from app.services.customers import get_customer
from app.workflow import MoveOption, Rule, Workflow

_NAME_COLUMNS = names.name_columns(Complaint, ComplaintRead)
COMPLAINT_SORTS = {
    "created_at": Complaint.created_at,
    "received_at": Complaint.received_at,
    "acknowledge_due_at": Complaint.acknowledge_due_at,
    "resolve_due_at": Complaint.resolve_due_at,
}
DIRECTOR_ONLY = frozenset({Role.DIRECTOR})


# Effects: what a move records besides the new status.


async def _acknowledge(
    session: AsyncSession, _: Actor, complaint: Complaint, __: Mapping[str, Any]
) -> None:
    complaint.acknowledged_at = utcnow()


async def _resolve(
    session: AsyncSession, _: Actor, complaint: Complaint, move: Mapping[str, Any]
) -> None:
    complaint.resolved_at = utcnow()
    complaint.resolution = move["resolution"]
    complaint.resolution_details = move["note"]


async def _close(
    session: AsyncSession, _: Actor, complaint: Complaint, move: Mapping[str, Any]
) -> None:
    complaint.closed_at = utcnow()
    complaint.satisfaction = move["satisfaction"]
    complaint.root_cause = move["root_cause"]
    complaint.corrective_action = move["corrective_action"]


def _forget_closing(complaint: Complaint) -> None:
    # Satisfaction feeds the reports as a closed complaint's score: a reopened one has none.
    complaint.closed_at = complaint.satisfaction = None
    complaint.root_cause = complaint.corrective_action = None


async def _reopen(
    session: AsyncSession, _: Actor, complaint: Complaint, __: Mapping[str, Any]
) -> None:
    """Back to investigating: the resolution did not hold, so the resolve clock runs again
    (a complaint reopened after its resolve due time is breached)."""
    _forget_closing(complaint)
    complaint.resolved_at = complaint.resolution = complaint.resolution_details = None


async def _unclose(
    session: AsyncSession, _: Actor, complaint: Complaint, __: Mapping[str, Any]
) -> None:
    _forget_closing(complaint)


COMPLAINT_TRANSITIONS: dict[str, dict[str, Rule]] = {
    ComplaintStatus.RECEIVED: {
        ComplaintStatus.ACKNOWLEDGED: Rule(effect=_acknowledge, event="complaint.acknowledged"),
    },
    ComplaintStatus.ACKNOWLEDGED: {ComplaintStatus.INVESTIGATING: Rule()},
    ComplaintStatus.INVESTIGATING: {
        ComplaintStatus.RESOLVED: Rule(
            needs=("resolution", "note"), effect=_resolve, event="complaint.resolved"
        ),
    },
    ComplaintStatus.RESOLVED: {
        ComplaintStatus.INVESTIGATING: Rule(
            needs=("note",), effect=_reopen, event="complaint.reopened"
        ),
        ComplaintStatus.CLOSED: Rule(
            needs=("satisfaction", "root_cause", "corrective_action"),
            effect=_close,
            event="complaint.closed",
        ),
    },
    # Closed is final, except that the director may reopen it.
    ComplaintStatus.CLOSED: {
        ComplaintStatus.INVESTIGATING: Rule(
            roles=DIRECTOR_ONLY, needs=("note",), effect=_reopen, event="complaint.reopened"
        ),
        ComplaintStatus.RESOLVED: Rule(
            roles=DIRECTOR_ONLY, needs=("note",), effect=_unclose, event="complaint.reopened"
        ),
    },
}


async def to_read(
    session: AsyncSession, complaint: Complaint, now: datetime | None = None
) -> ComplaintRead:
    shown = await names.names_for(session, ComplaintRead, complaint)
    return sla.to_read(complaint, shown, now)


class ComplaintMoveOption(
    MoveOption[
        ComplaintStatus,
        Literal["note", "resolution", "satisfaction", "root_cause", "corrective_action"],
    ]
):
    """A move a complaint may make now."""


WORKFLOW: Workflow[Complaint] = Workflow(
    entity_type="complaint",
    state_field="status",
    table=COMPLAINT_TRANSITIONS,
    to_read=to_read,
    option=ComplaintMoveOption,
    default_event="complaint.status_changed",
    closed_states=frozenset({ComplaintStatus.CLOSED.value}),
)


def visible_complaints(actor: Actor) -> ColumnElement[bool]:
    """Reps: complaints of their customers and those they handle; managers: their region's."""
    if actor.role is Role.REP:
        return or_(Complaint.owner_id == actor.id, Complaint.assignee_id == actor.id)
    return scope_filter(actor, Complaint.owner_id, Complaint.region_id)


async def get_complaint(session: AsyncSession, actor: Actor, complaint_id: uuid.UUID) -> Complaint:
    """The complaint in scope (404 otherwise), with the names its answer shows."""
    return await get_visible(
        session,
        Complaint,
        complaint_id,
        visible_complaints(actor),
        name="complaint",
        shown=ComplaintRead,
    )


async def read_complaint(session: AsyncSession, actor: Actor, complaint_id: uuid.UUID) -> Complaint:
    """A complaint as a GET shows it: a breach found now is escalated now."""
    complaint = await get_complaint(session, actor, complaint_id)
    await sla.escalate_on_read(session, complaint)
    return complaint


async def list_complaints(
    session: AsyncSession,
    actor: Actor,
    *,
    status: ComplaintStatus | None = None,
    severity: Severity | None = None,
    breached: bool | None = None,
    customer_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
    sort: str = "-created_at",
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[ComplaintRead], str | None]:
    now = utcnow()
    stmt: Select[Any] = select(Complaint, *_NAME_COLUMNS).where(visible_complaints(actor))
    for column, value in (
        (Complaint.status, status),
        (Complaint.severity, severity),
        (Complaint.customer_id, customer_id),
        (Complaint.assignee_id, assignee_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if breached is not None:
        clause = sla.breached_clause(now)
        stmt = stmt.where(clause if breached else not_(clause))
    rows, next_cursor = await paginate(
        session,
        stmt,
        sort=sort,
        sortable=COMPLAINT_SORTS,
        id_column=Complaint.id,
        cursor=cursor,
        limit=limit,
    )
    fields = names.name_fields(ComplaintRead)
    return [
        sla.to_read(row[0], dict(zip(fields, row[1:], strict=True)), now) for row in rows
    ], next_cursor


def _not_in_future(received_at: Any) -> None:
    if received_at is not None and received_at > utcnow():
        raise ValidationFailed(
            ["body", "received_at"], "received_at cannot be in the future.", "future_time"
        )


async def _check_contract(
    session: AsyncSession, customer_id: uuid.UUID, contract_id: uuid.UUID | None
) -> None:
    if contract_id is None:
        return
    owner = await session.scalar(select(Contract.customer_id).where(Contract.id == contract_id))
    if owner != customer_id:
        raise ValidationFailed(["body", "contract_id"], "No contract of this customer has this id.")


async def _check_assignee(
    session: AsyncSession,
    actor: Actor,
    region_id: uuid.UUID | None,
    assignee_id: uuid.UUID,
) -> None:
    """Managers (own region) and the director choose the handler: an active rep or manager
    of the complaint's region."""
    if not actor.can(Permission.COMPLAINTS_ASSIGN):
        raise Forbidden("Only a manager or the director may choose a complaint's handler.")
    if actor.is_manager and region_id != actor.region_id:
        raise Forbidden("You may only assign complaints of your own region.")
    user = await session.get(User, assignee_id)
    if (
        user is None
        or not user.is_active
        or user.role == Role.DIRECTOR
        or user.region_id != region_id
    ):
        raise ValidationFailed(
            ["body", "assignee_id"], "The handler must be an active user of the region."
        )


def _changes_sla(actor: Actor, complaint: Complaint, sent: Mapping[str, Any]) -> bool:
    """Whether ``sent`` moves what the SLA is measured from (severity, ``received_at``), and
    so its due times. Only a manager (own region, by scope) or the director may, and only
    before acknowledgement: after it, the clock has already judged the complaint."""
    # A null is no change but bad input, which ``apply_changes`` refuses with a 422.
    if not any(
        sent.get(field) not in (None, getattr(complaint, field))
        for field in ("severity", "received_at")
    ):
        return False
    if not actor.can(Permission.COMPLAINTS_MANAGE):
        raise Forbidden("Only a manager or the director may change severity or received_at.")
    if complaint.acknowledged_at is not None:
        raise Conflict(
            "The complaint is acknowledged; its severity and received_at no longer change.",
            reason="complaint_acknowledged",
        )
    return True


def _refuse_if_closed(actor: Actor, complaint: Complaint) -> None:
    if complaint.status == ComplaintStatus.CLOSED and not actor.is_director:
        raise Conflict(
            "The complaint is closed; only the director may change it.", reason="complaint_closed"
        )


async def create_complaint(session: AsyncSession, actor: Actor, data: ComplaintCreate) -> Complaint:
    customer: Customer = await get_customer(session, actor, data.customer_id)
    now = utcnow()
    received_at = data.received_at or now
    _not_in_future(received_at)
    await _check_contract(session, customer.id, data.contract_id)
    assignee_id = data.assignee_id or customer.owner_id
    if assignee_id != customer.owner_id:
        await _check_assignee(session, actor, customer.region_id, assignee_id)
    settings = await department.load(session)
    acknowledge_due_at, resolve_due_at = sla.due_times(settings, data.severity, received_at)
    complaint = Complaint(
        **data.model_dump(exclude={"customer_id", "received_at", "assignee_id"}),
        customer_id=customer.id,
        received_at=received_at,
        received_by_id=actor.id,
        assignee_id=assignee_id,
        owner_id=customer.owner_id,
        region_id=customer.region_id,
        acknowledge_due_at=acknowledge_due_at,
        resolve_due_at=resolve_due_at,
    )
    session.add(complaint)
    await session.flush()
    events.record(session, "complaint.created", complaint, await to_read(session, complaint, now))
    # Logged after its acknowledge time already passed (taken by phone, typed in later):
    # breached from the start, and escalated in this same transaction.
    await sla.escalate(session, complaint, now)
    return complaint


async def update_complaint(
    session: AsyncSession,
    actor: Actor,
    complaint_id: uuid.UUID,
    data: ComplaintUpdate,
    expected: int | None,
) -> Complaint:
    complaint = await get_complaint(session, actor, complaint_id)
    ensure_version(complaint, expected)
    _refuse_if_closed(actor, complaint)
    sent = data.model_dump(exclude_unset=True)
    _not_in_future(sent.get("received_at"))
    if sent.get("contract_id") is not None:
        await _check_contract(session, complaint.customer_id, sent["contract_id"])
    previous_assignee = complaint.assignee_id
    if sent.get("assignee_id") not in (None, previous_assignee):
        await _check_assignee(session, actor, complaint.region_id, sent["assignee_id"])
    moves_sla = _changes_sla(actor, complaint, sent)
    if moves_sla:
        # A breach the clock finds now is recorded before the due times move, so it stays.
        await sla.escalate(session, complaint)
    apply_changes(complaint, data)
    if moves_sla:
        settings = await department.load(session)
        complaint.acknowledge_due_at, complaint.resolve_due_at = sla.due_times(
            settings, complaint.severity, complaint.received_at
        )
    await session.flush()
    read = await to_read(session, complaint)
    events.record(session, "complaint.updated", complaint, read)
    if complaint.assignee_id != previous_assignee:
        events.record(
            session,
            "complaint.assigned",
            complaint,
            {**read.model_dump(mode="json"), "previous_assignee_id": str(previous_assignee)},
        )
    await sla.escalate(session, complaint)
    return complaint


async def transition(
    session: AsyncSession,
    actor: Actor,
    complaint_id: uuid.UUID,
    to: str,
    fields: Mapping[str, Any],
    expected: int | None,
) -> Complaint:
    complaint = await get_complaint(session, actor, complaint_id)
    await WORKFLOW.transition(session, actor, complaint, to, fields, expected)
    # A step done late (acknowledged after its due time) is a breach found right now.
    await sla.escalate(session, complaint)
    return complaint


async def escalate_by_hand(
    session: AsyncSession,
    actor: Actor,
    complaint_id: uuid.UUID,
    note: str,
    expected: int | None,
) -> Complaint:
    """A manager (own region, by scope) or the director escalates a complaint before, or
    without, a breach: ``escalated_at`` is set once and ``complaint.escalated`` notifies as a
    breach's escalation does, naming who escalated and why."""
    complaint = await get_complaint(session, actor, complaint_id)
    if not actor.can(Permission.COMPLAINTS_MANAGE):
        raise Forbidden("Only a manager or the director may escalate a complaint.")
    ensure_version(complaint, expected)
    if complaint.status == ComplaintStatus.CLOSED:
        raise Conflict("The complaint is closed.", reason="complaint_closed")
    now = utcnow()
    if complaint.escalated_at is not None or not await sla.claim(
        session, complaint, "escalated_at", now
    ):
        raise Conflict("The complaint is escalated already.", reason="already_escalated")
    audit.record(
        session, complaint, "update", {"escalated_at": None}, {"escalated_at": now.isoformat()}
    )
    await sla.record_escalation(
        session, complaint, now, sla.breaches(complaint, now), escalated_by_id=actor.id, note=note
    )
    return complaint


async def list_progress(
    session: AsyncSession,
    actor: Actor,
    complaint_id: uuid.UUID,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[ComplaintProgressRead], str | None]:
    """The complaint's progress updates, oldest first."""
    complaint = await get_complaint(session, actor, complaint_id)
    stmt: Select[Any] = select(ComplaintProgress).where(
        ComplaintProgress.complaint_id == complaint.id
    )
    rows, next_cursor = await paginate(
        session,
        stmt,
        sort="created_at",
        sortable={"created_at": ComplaintProgress.created_at},
        id_column=ComplaintProgress.id,
        cursor=cursor,
        limit=limit,
    )
    return [ComplaintProgressRead.model_validate(row) for row in rows], next_cursor


async def add_progress(
    session: AsyncSession,
    actor: Actor,
    complaint_id: uuid.UUID,
    data: ComplaintProgressCreate,
) -> ComplaintProgress:
    complaint = await get_complaint(session, actor, complaint_id)
    _refuse_if_closed(actor, complaint)
    progress = ComplaintProgress(
        complaint_id=complaint.id, message=data.message, author_id=actor.id
    )
    session.add(progress)
    await session.flush()
    events.record(
        session,
        "complaint.update_added",
        complaint,
        ComplaintProgressRead.model_validate(progress),
    )
    await sla.escalate(session, complaint)
    return progress
