"""Factories and look-ups for complaint tests."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from app.db import Database
from app.models.complaints import Complaint, ComplaintStatus, Severity
from app.models.contracts import Contract
from app.models.customers import Customer
from app.models.pipeline import Opportunity
from app.models.platform import Event
from app.models.quotes import QuoteStatus
from app.models.types import utcnow
from app.services.complaint_sla import due_times
from app.services.department import DepartmentSettings
from tests.factories import Person, make_customer
from tests.pipeline_helpers import make_quote

URL = "/api/v1/complaints"
_AFTER_STATUS = list(ComplaintStatus)
_numbers = itertools.count(1)


def body(customer_id: uuid.UUID, **fields: Any) -> dict[str, Any]:
    """A valid intake body; ``fields`` override or add."""
    return {
        "customer_id": str(customer_id),
        "channel": "phone",
        "category": "product_quality",
        "severity": "medium",
        "description": "The pump arrived with a cracked housing.",
        **fields,
    }


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def log_complaint(
    client: httpx.AsyncClient, person: Person, customer_id: uuid.UUID, **fields: Any
) -> dict[str, Any]:
    """Log a complaint through the API; returns its JSON."""
    response = await client.post(URL, json=body(customer_id, **fields), headers=person.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def make_complaint(
    database: Database,
    owner: Person,
    status: ComplaintStatus = ComplaintStatus.RECEIVED,
    *,
    severity: Severity = Severity.MEDIUM,
    received_at: datetime | None = None,
    customer: Customer | None = None,
    assignee: Person | None = None,
) -> Complaint:
    """A complaint put straight into ``status`` (bypassing the workflow, for set-up), each
    step done a minute after the previous one, so it is on time unless ``received_at`` is
    long past and a step is still open."""
    customer = customer or await make_customer(database, owner)
    received = received_at or utcnow()
    acknowledge_due, resolve_due = due_times(DepartmentSettings(), severity, received)
    reached = _AFTER_STATUS.index(status)
    minute = timedelta(minutes=1)
    complaint = Complaint(
        customer_id=customer.id,
        channel="email",
        category="delivery",
        severity=severity,
        description="Late delivery.",
        received_at=received,
        received_by_id=owner.id,
        assignee_id=assignee.id if assignee else customer.owner_id,
        owner_id=customer.owner_id,
        region_id=customer.region_id,
        status=status,
        acknowledge_due_at=acknowledge_due,
        resolve_due_at=resolve_due,
        acknowledged_at=received + minute if reached >= 1 else None,
        resolved_at=received + 2 * minute if reached >= 3 else None,
        resolution="replacement" if reached >= 3 else None,
        resolution_details="Sent a new one." if reached >= 3 else None,
        closed_at=received + 3 * minute if reached >= 4 else None,
        satisfaction=4 if reached >= 4 else None,
        root_cause="Packaging too thin." if reached >= 4 else None,
        corrective_action="Thicker packaging." if reached >= 4 else None,
    )
    async with database.session() as session, session.begin():
        session.add(complaint)
    return complaint


async def stored(database: Database, complaint_id: uuid.UUID | str) -> Complaint:
    async with database.session(write=False) as session:
        row = await session.get(Complaint, uuid.UUID(str(complaint_id)))
        assert row is not None
        return row


async def events_of(
    database: Database, complaint_id: uuid.UUID | str, type_: str | None = None
) -> list[Event]:
    """The events about this complaint, oldest first (optionally of one type)."""
    stmt = select(Event).where(Event.entity_id == uuid.UUID(str(complaint_id)))
    if type_ is not None:
        stmt = stmt.where(Event.type == type_)
    async with database.session(write=False) as session:
        return list((await session.scalars(stmt.order_by(Event.seq))).all())


async def make_contract(database: Database, owner: Person, opp: Opportunity) -> Contract:
    """A draft contract of ``opp``'s customer, inserted directly (only its link matters here)."""
    quote = await make_quote(database, owner, opp, QuoteStatus.ACCEPTED)
    contract = Contract(
        number=f"HT-2026-{next(_numbers):05d}",
        opportunity_id=opp.id,
        quote_id=quote.id,
        customer_id=opp.customer_id,
        owner_id=opp.owner_id,
        region_id=opp.region_id,
        amount=quote.total,
    )
    async with database.session() as session, session.begin():
        session.add(contract)
    return contract
