"""Contacts: the people at a customer. Scope is the customer's."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.errors import ValidationFailed
from app.models.customers import Contact, ContactCreate, ContactRead, ContactUpdate, Customer
from app.pagination import paginate
from app.permissions import Actor
from app.services.common import apply_changes, ensure_version, get_visible
from app.services.customers import customers_visible_ids, get_customer

CONTACT_SORTS = {"created_at": Contact.created_at, "name": Contact.name}


async def list_contacts(
    session: AsyncSession,
    actor: Actor,
    customer_id: uuid.UUID,
    sort: str,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[Contact], str | None]:
    await get_customer(session, actor, customer_id)
    stmt = select(Contact).where(Contact.customer_id == customer_id)
    return await paginate(
        session,
        stmt,
        sort=sort,
        sortable=CONTACT_SORTS,
        id_column=Contact.id,
        cursor=cursor,
        limit=limit,
    )


async def get_contact(session: AsyncSession, actor: Actor, contact_id: uuid.UUID) -> Contact:
    return await get_visible(
        session,
        Contact,
        contact_id,
        Contact.customer_id.in_(customers_visible_ids(actor)),
        name="contact",
    )


async def _make_sole_primary(session: AsyncSession, contact: Contact) -> None:
    others = (
        await session.scalars(
            select(Contact).where(
                Contact.customer_id == contact.customer_id,
                Contact.id != contact.id,
                Contact.is_primary.is_(True),
            )
        )
    ).all()
    for other in others:
        other.is_primary = False


def _record(session: AsyncSession, type_: str, contact: Contact, customer: Customer) -> None:
    events.record(session, type_, contact, ContactRead.model_validate(contact), scope=customer)


async def create_contact(
    session: AsyncSession, actor: Actor, customer_id: uuid.UUID, data: ContactCreate
) -> Contact:
    customer = await get_customer(session, actor, customer_id)
    has_primary = (
        await session.scalars(
            select(Contact.id).where(
                Contact.customer_id == customer.id, Contact.is_primary.is_(True)
            )
        )
    ).first()
    fields = data.model_dump(exclude={"email", "is_primary"})
    contact = Contact(
        **fields,
        email=str(data.email) if data.email else None,
        customer_id=customer.id,
        is_primary=bool(data.is_primary) or has_primary is None,
    )
    session.add(contact)
    if contact.is_primary:
        await _make_sole_primary(session, contact)
    await session.flush()
    _record(session, "contact.created", contact, customer)
    return contact


async def update_contact(
    session: AsyncSession,
    actor: Actor,
    contact_id: uuid.UUID,
    data: ContactUpdate,
    expected: int | None,
) -> Contact:
    contact = await get_contact(session, actor, contact_id)
    ensure_version(contact, expected)
    sent = data.model_dump(exclude_unset=True)
    if sent.get("name", "") is None or ("is_primary" in sent and sent["is_primary"] is None):
        raise ValidationFailed(["body"], "name and is_primary cannot be null.")
    if sent.get("is_primary") is False and contact.is_primary:
        # A customer with contacts always has exactly one primary: move it, don't drop it.
        raise ValidationFailed(
            ["body", "is_primary"],
            "This is the primary contact; make another contact primary instead.",
        )
    apply_changes(contact, data)
    if contact.email is not None:
        contact.email = str(contact.email)
    if sent.get("is_primary"):
        await _make_sole_primary(session, contact)
    await session.flush()
    customer = await session.get_one(Customer, contact.customer_id)
    _record(session, "contact.updated", contact, customer)
    return contact


async def delete_contact(
    session: AsyncSession, actor: Actor, contact_id: uuid.UUID, expected: int | None
) -> None:
    contact = await get_contact(session, actor, contact_id)
    ensure_version(contact, expected)
    customer = await session.get_one(Customer, contact.customer_id)
    _record(session, "contact.deleted", contact, customer)
    await session.delete(contact)
    await session.flush()
    if contact.is_primary:
        # Keep exactly one primary while any contact is left.
        successor = (
            await session.scalars(
                select(Contact)
                .where(Contact.customer_id == customer.id)
                .order_by(Contact.created_at, Contact.id)
                .limit(1)
            )
        ).first()
        if successor is not None:
            successor.is_primary = True
            await session.flush()
