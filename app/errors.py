"""The AppError family and the handlers that render every error as RFC 9457 problem+json."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from enum import StrEnum
from http import HTTPStatus
from typing import Any

from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.models.base import never_null

logger = logging.getLogger("salesdesk.errors")

PROBLEM_BASE = "https://salesdesk.dev/problems/"
PROBLEM_JSON = "application/problem+json"


# tests/test_openapi.py checks that the code answers no code outside this enum.
class ProblemCode(StrEnum):
    """Every `code` a problem document of this API carries."""

    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    CONFLICT = "conflict"
    INVALID_TRANSITION = "invalid_transition"
    VERSION_CONFLICT = "version_conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    VALIDATION_ERROR = "validation_error"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    UNAVAILABLE = "unavailable"
    # Any other HTTP status Starlette itself answers.
    ERROR = "error"


class AppError(Exception):
    """A failure the client can act on; rendered as a problem document."""

    status: int = 400
    code: ProblemCode = ProblemCode.BAD_REQUEST

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}


class BadRequest(AppError):
    status, code = 400, ProblemCode.BAD_REQUEST


class Unauthorized(AppError):
    status, code = 401, ProblemCode.UNAUTHORIZED

    def __init__(self, detail: str = "Missing or invalid credentials.", **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["WWW-Authenticate"] = "Bearer"


class Forbidden(AppError):
    status, code = 403, ProblemCode.FORBIDDEN


class NotFound(AppError):
    status, code = 404, ProblemCode.NOT_FOUND


class Conflict(AppError):
    """A duplicate or a business rule; ``reason`` says which in a machine-readable word."""

    status, code = 409, ProblemCode.CONFLICT

    def __init__(self, detail: str, *, reason: str, **extra: Any) -> None:
        super().__init__(detail, reason=reason, **extra)


class InvalidTransition(AppError):
    status, code = 409, ProblemCode.INVALID_TRANSITION

    def __init__(self, detail: str, *, current: str, allowed: Sequence[str]) -> None:
        super().__init__(detail, current=current, allowed=list(allowed))


class VersionConflict(AppError):
    status, code = 412, ProblemCode.VERSION_CONFLICT

    def __init__(
        self, detail: str = "The resource was changed since you read it; fetch it and retry."
    ) -> None:
        super().__init__(detail)


class ValidationFailed(AppError):
    """A field error found by a service rather than by the request schema."""

    status, code = 422, ProblemCode.VALIDATION_ERROR

    def __init__(self, loc: Sequence[str | int], msg: str, type_: str = "value_error") -> None:
        super().__init__(msg, errors=[{"loc": list(loc), "msg": msg, "type": type_}])


class IdempotencyKeyReused(AppError):
    status, code = 422, ProblemCode.IDEMPOTENCY_KEY_REUSED


class _RetryLater(AppError):
    """A refusal that says, in ``Retry-After``, how many seconds to wait before retrying."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.headers["Retry-After"] = str(retry_after)


class RateLimited(_RetryLater):
    status, code = 429, ProblemCode.RATE_LIMITED


class Unavailable(_RetryLater):
    """Too busy to answer now (``app.lanes``); the same code as an unreachable database."""

    status, code = 503, ProblemCode.UNAVAILABLE


class FieldError(BaseModel):
    """One invalid field: where it is (`["body", "amount"]`), what is wrong, and the kind of
    error (`missing`, `string_too_short`, `null_not_allowed`, `value_error`, …)."""

    loc: list[str | int]
    msg: str
    type: str


def _members_never_null(schema: dict[str, Any]) -> None:
    # Members left out of an answer are absent, not null (problem_response drops them).
    for member in schema["properties"].values():
        never_null(member)


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of this API is answered. The members after
    `code` appear only with the codes that carry them; none is ever null."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_members_never_null)

    type: str = Field(examples=[PROBLEM_BASE + "not_found"])
    title: str
    status: int
    detail: str
    code: ProblemCode
    errors: list[FieldError] | None = Field(
        default=None, description="`validation_error` (and a `bad_request` body): the fields."
    )
    reason: str | None = Field(
        default=None,
        description="`conflict`: which rule or duplicate, in a word (e.g. `duplicate_name`).",
    )
    existing_id: str | None = Field(
        default=None, description="`conflict` on a duplicate: the record that exists already."
    )
    current: str | None = Field(
        default=None, description="`invalid_transition`: the resource's state now."
    )
    allowed: list[str] | None = Field(
        default=None, description="`invalid_transition`: the states it may move to now."
    )
    correlation_id: str | None = Field(
        default=None,
        description="`internal_error` and `unavailable`: the id of the server's log lines.",
    )


def problem_response(
    status: int,
    code: ProblemCode,
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


_STATUS_CODES: dict[int, ProblemCode] = {
    400: ProblemCode.BAD_REQUEST,
    401: ProblemCode.UNAUTHORIZED,
    403: ProblemCode.FORBIDDEN,
    404: ProblemCode.NOT_FOUND,
    405: ProblemCode.METHOD_NOT_ALLOWED,
    406: ProblemCode.NOT_ACCEPTABLE,
    409: ProblemCode.CONFLICT,
    412: ProblemCode.VERSION_CONFLICT,
    413: ProblemCode.PAYLOAD_TOO_LARGE,
    415: ProblemCode.UNSUPPORTED_MEDIA_TYPE,
    429: ProblemCode.RATE_LIMITED,
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
            400, ProblemCode.BAD_REQUEST, "The request body is not valid JSON.", errors=errors
        )
    return problem_response(
        422, ProblemCode.VALIDATION_ERROR, "The request has invalid fields.", errors=errors
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
    code = _STATUS_CODES.get(exc.status_code, ProblemCode.ERROR)
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
        409,
        ProblemCode.CONFLICT,
        "The change conflicts with existing data.",
        reason="constraint_violation",
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
            ProblemCode.UNAVAILABLE,
            "The database took too long to answer and the request was cancelled; nothing "
            "was changed. Retry shortly.",
            headers={"Retry-After": "5"},
            correlation_id=cid,
        )
    if database_unavailable(exc):
        logger.error("database unavailable: %s", exc, extra={"correlation_id": cid})
        return problem_response(
            503,
            ProblemCode.UNAVAILABLE,
            "The database is unavailable; retry shortly.",
            headers={"Retry-After": "5"},
            correlation_id=cid,
        )
    logger.exception("unhandled error", exc_info=exc, extra={"correlation_id": cid})
    return problem_response(
        500,
        ProblemCode.INTERNAL_ERROR,
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
