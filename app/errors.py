"""The AppError family and the handlers that render every error as RFC 9457 problem+json."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("salesdesk.errors")

PROBLEM_BASE = "https://salesdesk.dev/problems/"
PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    """A failure the client can act on; rendered as a problem document."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}


class BadRequest(AppError):
    status, code = 400, "bad_request"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"

    def __init__(self, detail: str = "Missing or invalid credentials.", **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["WWW-Authenticate"] = "Bearer"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    """A duplicate or a business rule; ``reason`` says which in a machine-readable word."""

    status, code = 409, "conflict"

    def __init__(self, detail: str, *, reason: str, **extra: Any) -> None:
        super().__init__(detail, reason=reason, **extra)


class InvalidTransition(AppError):
    status, code = 409, "invalid_transition"

    def __init__(self, detail: str, *, current: str, allowed: Sequence[str]) -> None:
        super().__init__(detail, current=current, allowed=list(allowed))


class VersionConflict(AppError):
    status, code = 412, "version_conflict"

    def __init__(
        self, detail: str = "The resource was changed since you read it; fetch it and retry."
    ) -> None:
        super().__init__(detail)


class ValidationFailed(AppError):
    """A field error found by a service rather than by the request schema."""

    status, code = 422, "validation_error"

    def __init__(self, loc: Sequence[str | int], msg: str, type_: str = "value_error") -> None:
        super().__init__(msg, errors=[{"loc": list(loc), "msg": msg, "type": type_}])


class IdempotencyKeyReused(AppError):
    status, code = 422, "idempotency_key_reused"


class _RetryLater(AppError):
    """A refusal that says, in ``Retry-After``, how many seconds to wait before retrying."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.headers["Retry-After"] = str(retry_after)


class RateLimited(_RetryLater):
    status, code = 429, "rate_limited"


class Unavailable(_RetryLater):
    """Too busy to answer now (``app.lanes``); the same code as an unreachable database."""

    status, code = 503, "unavailable"


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of this API is answered."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, Any]] | None = None


def problem_response(
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **{k: v for k, v in extra.items() if v is not None},
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "version_conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _clean_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "loc": list(e.get("loc", ())),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(exc.status, exc.code, exc.detail, exc.headers or None, **exc.extra)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _clean_errors(exc.errors())
    if any(e["type"] == "json_invalid" for e in errors):
        return problem_response(
            400, "bad_request", "The request body is not valid JSON.", errors=errors
        )
    return problem_response(
        422, "validation_error", "The request has invalid fields.", errors=errors
    )


def _allowed_methods(request: Request) -> str:
    """Every method the API serves at this path, read from the OpenAPI document: FastAPI
    makes one route per method, and Starlette's Allow header names only the first one's."""
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No such resource."
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem_response(exc.status_code, code, detail, headers or None)


async def _integrity_error(_: Request, exc: Exception) -> JSONResponse:
    logger.info("integrity error mapped to 409: %s", exc)
    return problem_response(
        409, "conflict", "The change conflicts with existing data.", reason="constraint_violation"
    )


async def _stale_data(_: Request, exc: Exception) -> JSONResponse:
    err = VersionConflict()
    return problem_response(err.status, err.code, err.detail)


async def _operational_error(_: Request, exc: Exception) -> JSONResponse:
    return unexpected_error_response(exc)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    return unexpected_error_response(exc)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot answer right now, so a retry may well
    succeed: an OperationalError, no pooled connection free in time, any driver error that
    cost its connection (a restart, a refused connect; app.db marks those invalidated), or a
    statement PostgreSQL cancelled (past ``statement_timeout``)."""
    from app.db import statement_cancelled

    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return statement_cancelled(exc)


def unexpected_error_response(exc: Exception) -> JSONResponse:
    """The answer to a failure nobody planned for: logged with its traceback, answered with
    only the correlation id (503 when the database is unreachable or too slow to answer,
    500 otherwise)."""
    from app.db import statement_cancelled

    cid = correlation_id.get()
    if statement_cancelled(exc):
        logger.warning("statement cancelled: %s", exc, extra={"correlation_id": cid})
        return problem_response(
            503,
            "unavailable",
            "The database took too long to answer and the request was cancelled; nothing "
            "was changed. Retry shortly.",
            headers={"Retry-After": "5"},
            correlation_id=cid,
        )
    if database_unavailable(exc):
        logger.error("database unavailable: %s", exc, extra={"correlation_id": cid})
        return problem_response(
            503,
            "unavailable",
            "The database is unavailable; retry shortly.",
            headers={"Retry-After": "5"},
            correlation_id=cid,
        )
    logger.exception("unhandled error", exc_info=exc, extra={"correlation_id": cid})
    return problem_response(
        500,
        "internal_error",
        f"An unexpected error occurred; quote correlation id {cid}.",
        correlation_id=cid,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(StaleDataError, _stale_data)
    app.add_exception_handler(OperationalError, _operational_error)
    app.add_exception_handler(Exception, _unexpected)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given problem statuses."""
    return {
        status: {
            "model": Problem,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            "description": HTTPStatus(status).phrase,
            **({"headers": _RETRY_AFTER_HEADER} if status in (429, 503) else {}),
        }
        for status in statuses
    }


_RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}
