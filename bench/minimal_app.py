"""The least any implementation of ``GET /api/v1/customers/{id}`` must do, as a yardstick.

Starlette and an asyncpg pool: verify the HS256 access token with python-jose (the key the
real app uses), one primary-key query with the caller's scope in it, and the same JSON
fields the real app answers with. No ORM, no transaction, no settings, no logging.

    SALESDESK_SECRET_KEY=… BENCH_MINIMAL_DSN=postgresql://… uvicorn bench.minimal_app:app
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from jose import JWTError, jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

KEY = os.environ["SALESDESK_SECRET_KEY"]
DSN = os.environ["BENCH_MINIMAL_DSN"]
# The real app's pool: pool_size + max_overflow connections at most.
POOL_SIZE = int(os.environ.get("BENCH_MINIMAL_POOL", "20"))
DORMANT_AFTER = timedelta(days=180)

_COLUMNS = (
    "id, version, created_at, updated_at, name, industry, address, phone, email, source, "
    "needs, classification, suggested_classification, classification_overridden, "
    "classification_reason, classified_by_id, classified_at, status, owner_id, region_id, "
    "last_follow_up_at, follow_up_due_at"
)
_SCOPE = {
    "director": "",
    "regional_manager": " AND region_id = $2",
    "rep": " AND owner_id = $2",
}
_pool: asyncpg.Pool | None = None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _problem(status: int, code: str) -> Response:
    return JSONResponse(
        {"type": f"https://salesdesk.dev/problems/{code}", "status": status, "code": code},
        status_code=status,
        media_type="application/problem+json",
    )


async def customer(request: Request) -> Response:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return _problem(401, "unauthorized")
    try:
        claims = jwt.decode(token, KEY, algorithms=["HS256"])
        role = claims["role"]
        scope_value = claims["sub"] if role == "rep" else claims.get("region_id")
        customer_id = uuid.UUID(request.path_params["customer_id"])
    except (JWTError, KeyError):
        return _problem(401, "unauthorized")
    except ValueError:
        return _problem(404, "not_found")
    sql = f"SELECT {_COLUMNS} FROM customers WHERE id = $1 AND deleted_at IS NULL{_SCOPE[role]}"
    args: list[Any] = [customer_id] if role == "director" else [customer_id, scope_value]
    assert _pool is not None
    row = await _pool.fetchrow(sql, *args)
    if row is None:
        return _problem(404, "not_found")
    body = {key: _jsonable(value) for key, value in row.items()}
    last = row["last_follow_up_at"] or row["created_at"]
    if row["status"] != "lost" and last < datetime.now(UTC) - DORMANT_AFTER:
        body["status"] = "dormant"
    return JSONResponse(body, headers={"ETag": f'"{row["version"]}"'})


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global _pool
    _pool = await asyncpg.create_pool(DSN, min_size=1, max_size=POOL_SIZE)
    try:
        yield
    finally:
        await _pool.close()


app = Starlette(
    routes=[
        Route("/api/v1/customers/{customer_id}", customer),
        Route("/healthz", healthz),
    ],
    lifespan=lifespan,
)
