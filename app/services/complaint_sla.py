"""Complaint SLAs: due times by severity, breaches, and escalating each breach exactly once.

A breach is found three ways — at intake (a complaint logged late), whenever a complaint is
read or changed, and by the worker's periodic sweep — and all three go through ``escalate``.
Its conditional ``UPDATE … WHERE breached_at IS NULL`` records the breach once, and the one of
``escalated_at`` escalates once: of any number of sessions or processes trying at the same
time, exactly one UPDATE matches the row, and only that one records ``complaint.escalated``.
The stored ``breached_at`` keeps a breach once found, whatever later changes the due times;
a manager may also escalate by hand (``app.services.complaints.escalate_by_hand``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, and_, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app import audit, events
from app.db import Database
from app.models.complaints import Complaint, ComplaintRead, Severity
from app.models.people import Role, User
from app.models.types import utcnow
from app.services import names
from app.services.department import DepartmentSettings

logger = logging.getLogger("salesdesk.complaints")

SWEEP_BATCH = 100
_MAX_SWEEP_ROUNDS = 1000  # a bound on one sweep, however many breaches arrive meanwhile


def due_times(
    settings: DepartmentSettings, severity: str, received_at: datetime
) -> tuple[datetime, datetime]:
    """(acknowledge by, resolve by): calendar hours from receipt, the service line never sleeps."""
    sla = settings.complaint_slas[Severity(severity).value]
    return (
        received_at + timedelta(hours=sla.acknowledge_hours),
        received_at + timedelta(hours=sla.resolve_hours),
    )


def breaches(complaint: Complaint, now: datetime) -> list[str]:
    """The steps whose due time passed before they were done: "acknowledge", "resolve"."""
    late = []
    for step, done, due in (
        ("acknowledge", complaint.acknowledged_at, complaint.acknowledge_due_at),
        ("resolve", complaint.resolved_at, complaint.resolve_due_at),
    ):
        if (done is None and now > due) or (done is not None and done > due):
            late.append(step)
    return late


def late_clause(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """``breaches(...) != []`` as SQL: a due time passed before its step, by the current due
    times (``now`` may be a bound parameter, for statements built once)."""
    # Every term is true or false, never NULL, so ``NOT`` of it is exact too.
    return or_(
        and_(Complaint.acknowledged_at.is_(None), Complaint.acknowledge_due_at < now),
        and_(
            Complaint.acknowledged_at.is_not(None),
            Complaint.acknowledged_at > Complaint.acknowledge_due_at,
        ),
        and_(Complaint.resolved_at.is_(None), Complaint.resolve_due_at < now),
        and_(Complaint.resolved_at.is_not(None), Complaint.resolved_at > Complaint.resolve_due_at),
    )


def breached_clause(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """``breached`` as SQL, for ``?breached=`` and the reports: a breach recorded once stays,
    and one the clock finds now counts before the sweep records it."""
    return or_(Complaint.breached_at.is_not(None), late_clause(now))


def is_breached(complaint: Complaint, now: datetime) -> bool:
    return complaint.breached_at is not None or bool(breaches(complaint, now))


def to_read(
    complaint: Complaint, shown: Mapping[str, Any], now: datetime | None = None
) -> ComplaintRead:
    """The complaint as the API shows it, with its names (``app.services.names``)."""
    breached = is_breached(complaint, now or utcnow())
    return ComplaintRead.model_validate({**complaint.model_dump(), **shown, "breached": breached})


async def notified(session: AsyncSession, complaint: Complaint) -> list[uuid.UUID]:
    """Who hears of a breach: the region's managers, and for critical ones the director."""
    who = and_(User.role == Role.REGIONAL_MANAGER, User.region_id == complaint.region_id)
    if complaint.severity == Severity.CRITICAL:
        who = or_(who, User.role == Role.DIRECTOR)
    stmt = select(User.id).where(User.is_active.is_(True), who).order_by(User.role, User.id)
    return list((await session.scalars(stmt)).all())


async def claim(session: AsyncSession, complaint: Complaint, field: str, now: datetime) -> bool:
    """Set the bookkeeping timestamp ``field`` (``breached_at``, ``escalated_at``) to ``now``
    unless it is set already; True when this call set it.

    The conditional ``UPDATE … WHERE field IS NULL`` matches the row for exactly one of any
    number of sessions trying at once. It leaves ``version`` alone, so a background sweep
    never turns a client's If-Match stale; the caller writes the audit entry.
    """
    column = getattr(Complaint, field)
    result: Any = await session.execute(
        update(Complaint)
        .where(Complaint.id == complaint.id, column.is_(None))
        .values({field: now, "updated_at": Complaint.updated_at})
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        # Another session got there first; show what it stored (of both, as it sets both).
        stored = (
            await session.execute(
                select(Complaint.breached_at, Complaint.escalated_at).where(
                    Complaint.id == complaint.id
                )
            )
        ).one()
        set_committed_value(complaint, "breached_at", stored.breached_at)
        set_committed_value(complaint, "escalated_at", stored.escalated_at)
        return False
    set_committed_value(complaint, field, now)
    return True


async def record_escalation(
    session: AsyncSession,
    complaint: Complaint,
    now: datetime,
    late: list[str],
    escalated_by_id: uuid.UUID | None = None,
    note: str | None = None,
) -> None:
    """The ``complaint.escalated`` event: the complaint, its breaches, who is notified, and
    who escalated it by hand (with the note), if someone did."""
    notify = await notified(session, complaint)
    shown = await names.names_for(session, ComplaintRead, complaint)
    payload = {
        **to_read(complaint, shown, now).model_dump(mode="json"),
        "breaches": late,
        "notify_user_ids": [str(user_id) for user_id in notify],
        "escalated_by_id": str(escalated_by_id) if escalated_by_id else None,
        "note": note,
    }
    events.record(session, "complaint.escalated", complaint, payload)


async def escalate(
    session: AsyncSession, complaint: Complaint, now: datetime | None = None
) -> bool:
    """Record a breach found now and escalate it, each once; True when this call escalated.

    A complaint a manager escalated by hand before it breached gets its breach recorded,
    and no second escalation.
    """
    now = now or utcnow()
    if complaint.breached_at is not None:
        return False
    late = breaches(complaint, now)
    if not late or not await claim(session, complaint, "breached_at", now):
        return False
    changed = ["breached_at"]
    escalating = await claim(session, complaint, "escalated_at", now)
    if escalating:
        changed.append("escalated_at")
    # A Core UPDATE passes the audit hook by, so the entry is written here.
    audit.record(
        session,
        complaint,
        "update",
        dict.fromkeys(changed),
        dict.fromkeys(changed, now.isoformat()),
    )
    if escalating:
        await record_escalation(session, complaint, now, late)
    return escalating


async def escalate_on_read(session: AsyncSession, complaint: Complaint) -> None:
    """Escalate while answering a read. A read transaction on SQLite may be refused the write
    lock; the sweep then escalates a moment later, so the read still answers."""
    if complaint.breached_at is not None or not breaches(complaint, utcnow()):
        return
    try:
        async with session.begin_nested():
            await escalate(session, complaint)
    except OperationalError:
        logger.info("complaint %s: escalation left to the sweep", complaint.id)


async def sweep(database: Database, batch_size: int = SWEEP_BATCH) -> int:
    """Record every breach not recorded yet and escalate it; returns how many this call
    escalated.

    Each batch is its own transaction. On PostgreSQL the batch's rows are locked with
    ``SKIP LOCKED`` so concurrent sweepers share the work; the conditional UPDATE in
    ``escalate`` keeps escalation single even without that (and on SQLite, where writers
    queue on the database lock).
    """
    total = 0
    for _ in range(_MAX_SWEEP_ROUNDS):
        async with database.session() as session, session.begin():
            now = utcnow()
            stmt = (
                select(Complaint)
                .where(Complaint.breached_at.is_(None), late_clause(now))
                .order_by(Complaint.acknowledge_due_at, Complaint.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)  # SQLite renders no FOR UPDATE
            )
            batch = (await session.scalars(stmt)).all()
            for complaint in batch:
                total += await escalate(session, complaint, now)
        if len(batch) < batch_size:
            break
    return total
