"""Customers and their contacts."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Response

from app.answers import page_response
from app.db import autocommit_reads
from app.deps import IfMatchDep, SessionDep, require
from app.models.customers import (
    Classification,
    ClassificationOverride,
    ContactCreate,
    ContactRead,
    ContactUpdate,
    CustomerAssign,
    CustomerCreate,
    CustomerRead,
    CustomerStatus,
    CustomerUpdate,
)
from app.pagination import Page
from app.permissions import Actor, Permission
from app.routers.common import (
    Cursor,
    Limit,
    Search,
    api_router,
    created,
    created_with_headers,
    ok_with_etag,
    with_etag,
)
from app.services import contacts as contact_service
from app.services import customer_reads as read_service
from app.services import customers as service

router = api_router("/customers", "customers")
contacts = api_router("/contacts", "contacts")

Reader = Annotated[Actor, Depends(require(Permission.CUSTOMERS_READ))]
Writer = Annotated[Actor, Depends(require(Permission.CUSTOMERS_WRITE))]
Deleter = Annotated[Actor, Depends(require(Permission.CUSTOMERS_DELETE))]
Assigner = Annotated[Actor, Depends(require(Permission.CUSTOMERS_ASSIGN))]
Classifier = Annotated[Actor, Depends(require(Permission.CUSTOMERS_CLASSIFY))]


class CustomerPage(Page[CustomerRead]):
    pass


class ContactPage(Page[ContactRead]):
    pass


async def _answer(session: SessionDep, customer: object, response: Response) -> CustomerRead:
    read = await read_service.to_read(session, customer)  # type: ignore[arg-type]
    with_etag(response, read.version, read.unversioned())
    return read


@router.get("", summary="List customers in your scope", response_model=CustomerPage)
@autocommit_reads
async def customers_list(
    session: SessionDep,
    actor: Reader,
    owner_id: uuid.UUID | None = None,
    region_id: uuid.UUID | None = None,
    classification: Classification | None = None,
    status: CustomerStatus | None = None,
    overdue: bool | None = None,
    q: Search = None,
    sort: Literal[
        "created_at",
        "-created_at",
        "updated_at",
        "-updated_at",
        "name",
        "-name",
        "follow_up_due_at",
        "-follow_up_due_at",
    ] = "-created_at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    items, next_cursor = await read_service.list_customers(
        session,
        actor,
        owner_id=owner_id,
        region_id=region_id,
        classification=classification,
        status=status,
        overdue=overdue,
        q=q,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )
    return page_response(items, next_cursor)


@router.post(
    "",
    status_code=201,
    summary="Create a customer",
    responses=created_with_headers(errors=(403,)),
)
async def customers_create(
    session: SessionDep, actor: Writer, body: CustomerCreate, response: Response
) -> CustomerRead:
    customer = await service.create_customer(session, actor, body)
    read = await read_service.to_read(session, customer)
    created(response, f"/api/v1/customers/{customer.id}", read.version, read.unversioned())
    return read


@router.get("/{customer_id}", summary="Get a customer", responses=ok_with_etag())
@autocommit_reads
async def customers_get(
    session: SessionDep, actor: Reader, customer_id: uuid.UUID, response: Response
) -> CustomerRead:
    read = await read_service.read_customer(session, actor, customer_id)
    with_etag(response, read.version, read.unversioned())
    return read


@router.patch("/{customer_id}", summary="Change a customer's details", responses=ok_with_etag())
async def customers_update(
    session: SessionDep,
    actor: Writer,
    customer_id: uuid.UUID,
    body: CustomerUpdate,
    expected: IfMatchDep,
    response: Response,
) -> CustomerRead:
    customer = await service.update_customer(session, actor, customer_id, body, expected)
    return await _answer(session, customer, response)


@router.delete(
    "/{customer_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a customer (kept for audit and reports)",
)
async def customers_delete(
    session: SessionDep, actor: Deleter, customer_id: uuid.UUID, expected: IfMatchDep
) -> None:
    await service.delete_customer(session, actor, customer_id, expected)


@router.post(
    "/{customer_id}/assign", summary="Give a customer to another rep", responses=ok_with_etag()
)
async def customers_assign(
    session: SessionDep,
    actor: Assigner,
    customer_id: uuid.UUID,
    body: CustomerAssign,
    expected: IfMatchDep,
    response: Response,
) -> CustomerRead:
    customer = await service.assign_customer(session, actor, customer_id, body.owner_id, expected)
    return await _answer(session, customer, response)


@router.put(
    "/{customer_id}/classification",
    summary="Override the A/B/C classification",
    responses=ok_with_etag(),
)
async def customers_classify(
    session: SessionDep,
    actor: Classifier,
    customer_id: uuid.UUID,
    body: ClassificationOverride,
    expected: IfMatchDep,
    response: Response,
) -> CustomerRead:
    customer = await service.override_classification(session, actor, customer_id, body, expected)
    return await _answer(session, customer, response)


@router.delete(
    "/{customer_id}/classification",
    summary="Return to the suggested classification",
    responses=ok_with_etag(),
)
async def customers_unclassify(
    session: SessionDep,
    actor: Classifier,
    customer_id: uuid.UUID,
    expected: IfMatchDep,
    response: Response,
) -> CustomerRead:
    customer = await service.override_classification(session, actor, customer_id, None, expected)
    return await _answer(session, customer, response)


@router.get("/{customer_id}/contacts", summary="List a customer's contacts")
async def contacts_list(
    session: SessionDep,
    actor: Reader,
    customer_id: uuid.UUID,
    sort: Literal["created_at", "-created_at", "name", "-name"] = "created_at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> ContactPage:
    rows, next_cursor = await contact_service.list_contacts(
        session, actor, customer_id, sort, cursor, limit
    )
    return ContactPage(items=[ContactRead.model_validate(c) for c in rows], next_cursor=next_cursor)


@router.post(
    "/{customer_id}/contacts",
    status_code=201,
    summary="Add a contact",
    responses=created_with_headers(),
)
async def contacts_create(
    session: SessionDep,
    actor: Writer,
    customer_id: uuid.UUID,
    body: ContactCreate,
    response: Response,
) -> ContactRead:
    contact = await contact_service.create_contact(session, actor, customer_id, body)
    created(response, f"/api/v1/contacts/{contact.id}", contact.version)
    return ContactRead.model_validate(contact)


@contacts.get("/{contact_id}", summary="Get a contact", responses=ok_with_etag())
async def contacts_get(
    session: SessionDep, actor: Reader, contact_id: uuid.UUID, response: Response
) -> ContactRead:
    contact = await contact_service.get_contact(session, actor, contact_id)
    with_etag(response, contact.version)
    return ContactRead.model_validate(contact)


@contacts.patch("/{contact_id}", summary="Change a contact", responses=ok_with_etag())
async def contacts_update(
    session: SessionDep,
    actor: Writer,
    contact_id: uuid.UUID,
    body: ContactUpdate,
    expected: IfMatchDep,
    response: Response,
) -> ContactRead:
    contact = await contact_service.update_contact(session, actor, contact_id, body, expected)
    with_etag(response, contact.version)
    return ContactRead.model_validate(contact)


@contacts.delete(
    "/{contact_id}", status_code=204, response_class=Response, summary="Remove a contact"
)
async def contacts_delete(
    session: SessionDep, actor: Writer, contact_id: uuid.UUID, expected: IfMatchDep
) -> None:
    await contact_service.delete_contact(session, actor, contact_id, expected)
