"""Contracts: drafting, terms, review and signing, the payment plan, payments, deliveries;
and receivables across contracts."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Query, Response

from app.deps import IfMatchDep, SessionDep, require
from app.models.contracts import (
    ContractCreate,
    ContractRead,
    ContractStatus,
    ContractTransition,
    ContractUpdate,
    DeliveryCreate,
    DeliveryRead,
    DeliveryUpdate,
    InstallmentCreate,
    InstallmentPlan,
    InstallmentRead,
    PaymentCreate,
    PaymentRead,
    ReceivableRead,
)
from app.models.platform import StateChangeRead
from app.pagination import Page
from app.permissions import Actor, Permission
from app.routers.common import (
    Cursor,
    Limit,
    api_router,
    created,
    created_with_headers,
    ok_with_etag,
    with_etag,
)
from app.services import collections
from app.services import contract_workflow as workflow
from app.services import contracts as service
from app.services import deliveries as delivery_service

router = api_router("/contracts", "contracts")
deliveries = api_router("/deliveries", "contracts")
receivables = api_router("/receivables", "contracts")
Reader = Annotated[Actor, Depends(require(Permission.CONTRACTS_READ))]
Writer = Annotated[Actor, Depends(require(Permission.CONTRACTS_WRITE))]
NumberSearch = Annotated[
    str | None,
    Query(min_length=1, max_length=32, description="Search by contract number (HT-2026-…)."),
]


class ContractPage(Page[ContractRead]):
    pass


class InstallmentPage(Page[InstallmentRead]):
    pass


class PaymentPage(Page[PaymentRead]):
    pass


class DeliveryPage(Page[DeliveryRead]):
    pass


class ReceivablePage(Page[ReceivableRead]):
    pass


class ContractHistoryPage(Page[StateChangeRead]):
    pass


async def _answer(session: SessionDep, contract: object, response: Response) -> ContractRead:
    read = await service.to_read(session, contract)  # type: ignore[arg-type]
    with_etag(response, read.version, read.unversioned())
    return read


@router.get("", summary="List contracts in your scope")
async def contracts_list(
    session: SessionDep,
    actor: Reader,
    status: ContractStatus | None = None,
    owner_id: uuid.UUID | None = None,
    region_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    opportunity_id: uuid.UUID | None = None,
    review_overdue: Annotated[
        bool | None, Query(description="Under review and past review_due_at.")
    ] = None,
    q: NumberSearch = None,
    sort: Literal["created_at", "-created_at", "updated_at", "-updated_at", "amount", "-amount"] = (
        "-created_at"
    ),
    cursor: Cursor = None,
    limit: Limit = 50,
) -> ContractPage:
    items, next_cursor = await service.list_contracts(
        session,
        actor,
        status=status,
        owner_id=owner_id,
        region_id=region_id,
        customer_id=customer_id,
        opportunity_id=opportunity_id,
        review_overdue=review_overdue,
        q=q,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )
    return ContractPage(items=items, next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    summary="Draft the contract of a won opportunity from its accepted quote",
    responses=created_with_headers(),
)
async def contracts_create(
    session: SessionDep, actor: Writer, body: ContractCreate, response: Response
) -> ContractRead:
    contract = await service.create_contract(session, actor, body)
    read = await service.to_read(session, contract)
    created(response, f"/api/v1/contracts/{contract.id}", read.version, read.unversioned())
    return read


@router.get("/{contract_id}", summary="Get a contract", responses=ok_with_etag())
async def contracts_get(
    session: SessionDep, actor: Reader, contract_id: uuid.UUID, response: Response
) -> ContractRead:
    contract = await service.get_contract(session, actor, contract_id, shown=True)
    return await _answer(session, contract, response)


@router.patch("/{contract_id}", summary="Change a draft contract's terms", responses=ok_with_etag())
async def contracts_update(
    session: SessionDep,
    actor: Writer,
    contract_id: uuid.UUID,
    body: ContractUpdate,
    expected: IfMatchDep,
    response: Response,
) -> ContractRead:
    contract = await service.update_contract(session, actor, contract_id, body, expected)
    return await _answer(session, contract, response)


@router.get("/{contract_id}/transitions", summary="The status moves you may make now")
async def contracts_transitions_list(
    session: SessionDep, actor: Reader, contract_id: uuid.UUID
) -> list[workflow.ContractMoveOption]:
    contract = await service.get_contract(session, actor, contract_id)
    return await workflow.WORKFLOW.options(session, actor, contract)


@router.post(
    "/{contract_id}/transitions",
    summary="Submit, approve, reject, sign, start, terminate or cancel a contract",
    description="A manager's approval of a contract above the director threshold keeps it "
    "`under_review`, now at the director's step (`review_step`). `completed` is never asked "
    "for: the contract completes itself when the last delivery is confirmed and the last "
    "installment paid.",
    responses=ok_with_etag(errors=(403,)),
)
async def contracts_transition(
    session: SessionDep,
    actor: Writer,
    contract_id: uuid.UUID,
    body: ContractTransition,
    expected: IfMatchDep,
    response: Response,
) -> ContractRead:
    contract = await workflow.transition(
        session, actor, contract_id, body.to, body.model_dump(exclude={"to"}), expected
    )
    return await _answer(session, contract, response)


@router.get("/{contract_id}/history", summary="Every status change: from, to, who, when, note")
async def contracts_history(
    session: SessionDep, actor: Reader, contract_id: uuid.UUID
) -> ContractHistoryPage:
    changes = await workflow.history(session, actor, contract_id)
    return ContractHistoryPage(
        items=[StateChangeRead.model_validate(c) for c in changes], next_cursor=None
    )


@router.get("/{contract_id}/installments", summary="The payment plan, oldest due first")
async def installments_list(
    session: SessionDep, actor: Reader, contract_id: uuid.UUID
) -> InstallmentPage:
    items = await collections.list_installments(session, actor, contract_id)
    return InstallmentPage(items=items, next_cursor=None)


@router.post(
    "/{contract_id}/installments",
    status_code=201,
    summary="Add an installment to a draft contract's payment plan",
    description="`If-Match` takes the contract's ETag: the plan is part of the contract.",
    responses=created_with_headers(),
)
async def installments_create(
    session: SessionDep,
    actor: Writer,
    contract_id: uuid.UUID,
    body: InstallmentCreate,
    expected: IfMatchDep,
    response: Response,
) -> InstallmentRead:
    installment = await collections.add_installment(session, actor, contract_id, body, expected)
    created(response, f"/api/v1/contracts/{contract_id}/installments", installment.version)
    return (await collections.installment_reads(session, [installment]))[0]


@router.put(
    "/{contract_id}/installments",
    summary="Replace a draft contract's whole payment plan",
    description="`If-Match` takes the contract's ETag: the plan is part of the contract.",
)
async def installments_replace(
    session: SessionDep,
    actor: Writer,
    contract_id: uuid.UUID,
    body: InstallmentPlan,
    expected: IfMatchDep,
) -> InstallmentPage:
    items = await collections.replace_installments(
        session, actor, contract_id, body.installments, expected
    )
    return InstallmentPage(items=items, next_cursor=None)


@router.get("/{contract_id}/payments", summary="Payments received, oldest first")
async def payments_list(
    session: SessionDep,
    actor: Reader,
    contract_id: uuid.UUID,
    sort: Literal["created_at", "-created_at"] = "created_at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> PaymentPage:
    items, next_cursor = await collections.list_payments(
        session, actor, contract_id, sort=sort, cursor=cursor, limit=limit
    )
    return PaymentPage(items=items, next_cursor=next_cursor)


@router.post(
    "/{contract_id}/payments",
    status_code=201,
    summary="Record a payment received (overpayment is refused)",
    description="Without `installment_id` the payment pays the oldest open installments "
    "first. More than is owed (on the contract, or on the named installment) is a 409 "
    "`conflict` with reason `overpayment`. The first payment of a signed contract puts it "
    "in progress; the payment that settles the plan after the last confirmed delivery "
    "completes it.",
    responses=created_with_headers(),
)
async def payments_create(
    session: SessionDep,
    actor: Writer,
    contract_id: uuid.UUID,
    body: PaymentCreate,
    response: Response,
) -> PaymentRead:
    payment = await collections.record_payment(session, actor, contract_id, body)
    created(response, f"/api/v1/contracts/{contract_id}/payments", payment.version)
    return (await collections.payment_reads(session, [payment]))[0]


@router.get("/{contract_id}/deliveries", summary="A contract's deliveries, by planned date")
async def deliveries_list(
    session: SessionDep, actor: Reader, contract_id: uuid.UUID
) -> DeliveryPage:
    items = await delivery_service.list_deliveries(session, actor, contract_id)
    return DeliveryPage(items=items, next_cursor=None)


@router.post(
    "/{contract_id}/deliveries",
    status_code=201,
    summary="Plan a delivery",
    responses=created_with_headers(),
)
async def deliveries_create(
    session: SessionDep,
    actor: Writer,
    contract_id: uuid.UUID,
    body: DeliveryCreate,
    response: Response,
) -> DeliveryRead:
    delivery = await delivery_service.create_delivery(session, actor, contract_id, body)
    created(response, f"/api/v1/deliveries/{delivery.id}", delivery.version)
    return delivery_service.to_read(delivery)


@deliveries.get("/{delivery_id}", summary="Get a delivery", responses=ok_with_etag())
async def deliveries_get(
    session: SessionDep, actor: Reader, delivery_id: uuid.UUID, response: Response
) -> DeliveryRead:
    delivery = await delivery_service.get_delivery(session, actor, delivery_id)
    with_etag(response, delivery.version)
    return delivery_service.to_read(delivery)


@deliveries.patch(
    "/{delivery_id}",
    summary="Record a delivery made, or the customer's confirmation of receipt",
    description="Setting `delivered_on` on a signed contract puts it in progress; the "
    "confirmation (`confirmed_on` and `confirmed_by`) that completes the deliveries of a "
    "fully paid contract completes it. A confirmed delivery no longer changes.",
    responses=ok_with_etag(),
)
async def deliveries_update(
    session: SessionDep,
    actor: Writer,
    delivery_id: uuid.UUID,
    body: DeliveryUpdate,
    expected: IfMatchDep,
    response: Response,
) -> DeliveryRead:
    delivery = await delivery_service.update_delivery(session, actor, delivery_id, body, expected)
    with_etag(response, delivery.version)
    return delivery_service.to_read(delivery)


@receivables.get("", summary="Open installments of running contracts, oldest due first")
async def receivables_list(
    session: SessionDep,
    actor: Reader,
    overdue: Annotated[
        bool | None, Query(description="Past the due date and not fully paid.")
    ] = None,
    owner_id: uuid.UUID | None = None,
    region_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    contract_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> ReceivablePage:
    items, next_cursor = await collections.list_receivables(
        session,
        actor,
        overdue=overdue,
        owner_id=owner_id,
        region_id=region_id,
        customer_id=customer_id,
        contract_id=contract_id,
        cursor=cursor,
        limit=limit,
    )
    return ReceivablePage(items=items, next_cursor=next_cursor)
