"""Liveness, readiness and metrics, outside /api/v1 and without authentication."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from app.errors import error_responses
from app.routers.common import operation_id

router = APIRouter(tags=["health"], generate_unique_id_function=operation_id)


class Health(BaseModel):
    status: str


@router.get("/healthz", summary="The process is up")
async def health_live() -> Health:
    return Health(status="ok")


@router.get("/readyz", summary="The database answers", responses=error_responses(503))
async def health_ready(request: Request) -> Health:
    async with request.app.state.database.session(write=False) as session:
        await session.execute(text("SELECT 1"))
    return Health(status="ok")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def health_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
