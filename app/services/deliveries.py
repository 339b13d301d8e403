"""Deliveries (交付): planned, delivered, and confirmed by the customer (客户确认接收).

A delivery's changes lock its contract's row first, like payments, so the last of a
confirmation and a payment arriving together sees both and completes the contract.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.errors import Conflict, ValidationFailed
from app.models.contracts import (
    Contract,
    Delivery,
    DeliveryCreate,
    DeliveryRead,
    DeliveryStatus,
    DeliveryUpdate,
)
from app.permissions import Actor
from app.services import department
from app.services.common import apply_changes, ensure_version, get_visible
from app.services.contract_workflow import complete_if_done, start_if_signed
from app.services.contracts import (
    ACTIVE,
    CLOSED,
    get_contract,
    visible_contracts,
)


def to_read(delivery: Delivery) -> DeliveryRead:
    if delivery.confirmed_on is not None:
        status = DeliveryStatus.CONFIRMED
    elif delivery.delivered_on is not None:
        status = DeliveryStatus.DELIVERED
    else:
        status = DeliveryStatus.PLANNED
    return DeliveryRead.model_validate({**delivery.model_dump(), "status": status})


def _visible(actor: Actor) -> Any:
    return Delivery.contract_id.in_(select(Contract.id).where(visible_contracts(actor)))


def _refuse_if_closed(contract: Contract) -> None:
    if contract.status in CLOSED:
        raise Conflict(
            f"The contract is {contract.status}; its deliveries no longer change.",
            reason="contract_closed",
        )


def _record(session: AsyncSession, type_: str, delivery: Delivery, contract: Contract) -> None:
    data = {**to_read(delivery).model_dump(mode="json"), "contract_number": contract.number}
    events.record(session, type_, delivery, data, scope=contract)


async def list_deliveries(
    session: AsyncSession, actor: Actor, contract_id: uuid.UUID
) -> list[DeliveryRead]:
    contract = await get_contract(session, actor, contract_id)
    stmt = (
        select(Delivery)
        .where(Delivery.contract_id == contract.id)
        .order_by(Delivery.planned_date, Delivery.created_at, Delivery.id)
    )
    return [to_read(d) for d in (await session.scalars(stmt)).all()]


async def get_delivery(session: AsyncSession, actor: Actor, delivery_id: uuid.UUID) -> Delivery:
    return await get_visible(session, Delivery, delivery_id, _visible(actor), name="delivery")


async def create_delivery(
    session: AsyncSession, actor: Actor, contract_id: uuid.UUID, data: DeliveryCreate
) -> Delivery:
    contract = await get_contract(session, actor, contract_id, for_update=True)
    _refuse_if_closed(contract)
    await department.refuse_past(
        session, ["body", "planned_date"], data.planned_date, "A new delivery is planned for"
    )
    delivery = Delivery(contract_id=contract.id, **data.model_dump())
    session.add(delivery)
    await session.flush()
    _record(session, "delivery.created", delivery, contract)
    return delivery


def _check(delivery: Delivery, contract: Contract, today: date) -> None:
    """The rules a delivery must satisfy after a change."""
    if delivery.delivered_on is not None:
        if contract.status not in ACTIVE:
            raise Conflict(
                f"The contract is {contract.status}; deliveries are made once it is signed.",
                reason="contract_not_active",
            )
        if delivery.delivered_on > today:
            raise ValidationFailed(["body", "delivered_on"], "A delivery cannot be made later.")
    if delivery.confirmed_on is None:
        if delivery.confirmed_by is not None:
            raise ValidationFailed(["body", "confirmed_on"], "Say when the customer confirmed.")
        return
    if delivery.delivered_on is None:
        raise ValidationFailed(["body", "delivered_on"], "Confirmation needs the delivery date.")
    if delivery.confirmed_on < delivery.delivered_on:
        raise ValidationFailed(
            ["body", "confirmed_on"], "The customer confirms receipt on or after delivery."
        )
    if delivery.confirmed_on > today:
        raise ValidationFailed(["body", "confirmed_on"], "A confirmation cannot be later.")
    if not delivery.confirmed_by:
        raise ValidationFailed(["body", "confirmed_by"], "Say who confirmed, for the customer.")


async def update_delivery(
    session: AsyncSession,
    actor: Actor,
    delivery_id: uuid.UUID,
    data: DeliveryUpdate,
    expected: int | None,
) -> Delivery:
    delivery = await get_delivery(session, actor, delivery_id)
    contract = await get_contract(session, actor, delivery.contract_id, for_update=True)
    await session.refresh(delivery)  # as it is now that its contract is locked
    ensure_version(delivery, expected)
    if delivery.confirmed_on is not None:
        raise Conflict(
            "The customer confirmed this delivery; it no longer changes.",
            reason="delivery_confirmed",
        )
    _refuse_if_closed(contract)
    was_delivered = delivery.delivered_on is not None
    apply_changes(delivery, data)
    _check(delivery, contract, department.today(await department.load(session)))
    if not session.is_modified(delivery):
        return delivery
    await session.flush()
    _record(session, "delivery.updated", delivery, contract)
    if delivery.delivered_on is not None and not was_delivered:
        await start_if_signed(session, actor, contract)
    if delivery.confirmed_on is not None:
        _record(session, "delivery.confirmed", delivery, contract)
        await complete_if_done(session, actor, contract)
    return delivery
