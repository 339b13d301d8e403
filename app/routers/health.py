"""Liveness, readiness and metrics, outside /api/v1 and without authentication."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from app.errors import Unavailable, error_responses
from app.migrations import not_at
from app.routers.common import operation_id

# A migration takes a while: a probe need not ask again at once.
_MIGRATION_RETRY_AFTER = 30

router = APIRouter(tags=["health"], generate_unique_id_function=operation_id)


class Health(BaseModel):
    status: str


@router.get("/healthz", summary="The process is up")
async def health_live() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="The database answers and is migrated",
    description="Ready means the database is reachable and migrated to the revision this "
    "release needs (alembic head): otherwise every request would fail. 503 when it is not, "
    "with a `detail` saying which.",
    responses=error_responses(503),
)
async def health_ready(request: Request) -> Health:
    async with request.app.state.database.session(write=False) as session:
        # An unreachable database fails here (503 by the error handlers).
        connection = await session.connection()
        reason = await not_at(connection, request.app.state.migration_head)
    if reason is not None:
        raise Unavailable(reason, _MIGRATION_RETRY_AFTER)
    return Health(status="ok")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def health_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
