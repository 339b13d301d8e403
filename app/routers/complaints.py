"""Complaints: intake, the handling workflow, SLA breaches and progress updates."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Query, Response

from app.deps import IfMatchDep, SessionDep, require
from app.models.complaints import (
    ComplaintCreate,
    ComplaintEscalate,
    ComplaintProgressCreate,
    ComplaintProgressRead,
    ComplaintRead,
    ComplaintStatus,
    ComplaintTransition,
    ComplaintUpdate,
    Severity,
)
from app.pagination import Page
from app.permissions import Actor, Permission
from app.routers.common import (
    CREATED_HEADERS,
    Cursor,
    Limit,
    api_router,
    created,
    created_with_headers,
    ok_with_etag,
    with_etag,
)
from app.services import complaints as service

router = api_router("/complaints", "complaints")
Reader = Annotated[Actor, Depends(require(Permission.COMPLAINTS_READ))]
Writer = Annotated[Actor, Depends(require(Permission.COMPLAINTS_WRITE))]

ComplaintSort = Literal[
    "created_at",
    "-created_at",
    "received_at",
    "-received_at",
    "acknowledge_due_at",
    "-acknowledge_due_at",
    "resolve_due_at",
    "-resolve_due_at",
]


class ComplaintPage(Page[ComplaintRead]):
    pass


class ComplaintProgressPage(Page[ComplaintProgressRead]):
    pass


async def _answer(session: SessionDep, complaint: object, response: Response) -> ComplaintRead:
    read = await service.to_read(session, complaint)  # type: ignore[arg-type]
    with_etag(response, read.version, read.unversioned())
    return read


@router.get("", summary="List complaints in your scope")
async def complaints_list(
    session: SessionDep,
    actor: Reader,
    status: ComplaintStatus | None = None,
    severity: Severity | None = None,
    breached: Annotated[
        bool | None,
        Query(description="true: only complaints past a due time; false: only those on time."),
    ] = None,
    customer_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
    sort: ComplaintSort = "-created_at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> ComplaintPage:
    items, next_cursor = await service.list_complaints(
        session,
        actor,
        status=status,
        severity=severity,
        breached=breached,
        customer_id=customer_id,
        assignee_id=assignee_id,
        sort=sort,
        cursor=cursor,
        limit=limit,
    )
    return ComplaintPage(items=items, next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    summary="Log a customer's complaint",
    responses=created_with_headers(errors=(403,)),
)
async def complaints_create(
    session: SessionDep, actor: Writer, body: ComplaintCreate, response: Response
) -> ComplaintRead:
    complaint = await service.create_complaint(session, actor, body)
    read = await service.to_read(session, complaint)
    created(response, f"/api/v1/complaints/{complaint.id}", read.version, read.unversioned())
    return read


@router.get("/{complaint_id}", summary="Get a complaint", responses=ok_with_etag())
async def complaints_get(
    session: SessionDep, actor: Reader, complaint_id: uuid.UUID, response: Response
) -> ComplaintRead:
    complaint = await service.read_complaint(session, actor, complaint_id)
    return await _answer(session, complaint, response)


@router.patch(
    "/{complaint_id}",
    summary="Change a complaint's details or its handler (managers, director)",
    description="Due times follow a new `severity` or `received_at`, which only the region's "
    "manager or the director may change (403 otherwise), and only before acknowledgement "
    "(409 `conflict`, reason `complaint_acknowledged`). A breach already found stays: "
    "`breached` never turns back to false.",
    responses=ok_with_etag(errors=(403,)),
)
async def complaints_update(
    session: SessionDep,
    actor: Writer,
    complaint_id: uuid.UUID,
    body: ComplaintUpdate,
    expected: IfMatchDep,
    response: Response,
) -> ComplaintRead:
    complaint = await service.update_complaint(session, actor, complaint_id, body, expected)
    return await _answer(session, complaint, response)


@router.get("/{complaint_id}/transitions", summary="The status moves you may make now")
async def complaints_transitions_list(
    session: SessionDep, actor: Reader, complaint_id: uuid.UUID
) -> list[service.ComplaintMoveOption]:
    complaint = await service.get_complaint(session, actor, complaint_id)
    return await service.WORKFLOW.options(session, actor, complaint)


@router.post(
    "/{complaint_id}/transitions",
    summary="Acknowledge, investigate, resolve, reopen or close a complaint",
    responses=ok_with_etag(errors=(403,)),
)
async def complaints_transition(
    session: SessionDep,
    actor: Writer,
    complaint_id: uuid.UUID,
    body: ComplaintTransition,
    expected: IfMatchDep,
    response: Response,
) -> ComplaintRead:
    complaint = await service.transition(
        session, actor, complaint_id, body.to, body.model_dump(exclude={"to"}), expected
    )
    return await _answer(session, complaint, response)


@router.post(
    "/{complaint_id}/escalate",
    summary="Escalate a complaint by hand (managers, director)",
    description="The region's manager or the director escalates a complaint with a `note`, "
    "breached or not: `escalated_at` is set and `complaint.escalated` notifies the region's "
    "managers (and the director for critical complaints), as a breach's escalation does, with "
    "`escalated_by_id` and the `note`. Escalation is the server's bookkeeping and leaves "
    "`version` alone. 403 for a rep; 409 `conflict` with reason `already_escalated` (once "
    "only, by hand or by a breach) or `complaint_closed`.",
    responses=ok_with_etag(),
)
async def complaints_escalate(
    session: SessionDep,
    actor: Writer,
    complaint_id: uuid.UUID,
    body: ComplaintEscalate,
    expected: IfMatchDep,
    response: Response,
) -> ComplaintRead:
    complaint = await service.escalate_by_hand(session, actor, complaint_id, body.note, expected)
    return await _answer(session, complaint, response)


@router.get("/{complaint_id}/updates", summary="Progress updates to the customer, oldest first")
async def complaint_updates_list(
    session: SessionDep,
    actor: Reader,
    complaint_id: uuid.UUID,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> ComplaintProgressPage:
    items, next_cursor = await service.list_progress(
        session, actor, complaint_id, cursor=cursor, limit=limit
    )
    return ComplaintProgressPage(items=items, next_cursor=next_cursor)


@router.post(
    "/{complaint_id}/updates",
    status_code=201,
    summary="Log a progress update sent to the customer",
    responses={
        201: {"description": "Created", "headers": {"Location": CREATED_HEADERS["Location"]}}
    },
)
async def complaint_updates_create(
    session: SessionDep,
    actor: Writer,
    complaint_id: uuid.UUID,
    body: ComplaintProgressCreate,
    response: Response,
) -> ComplaintProgressRead:
    progress = await service.add_progress(session, actor, complaint_id, body)
    response.headers["Location"] = f"/api/v1/complaints/{complaint_id}/updates"
    return ComplaintProgressRead.model_validate(progress)
