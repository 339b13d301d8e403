"""What every router shares: error documentation, list parameters, response helpers."""

from __future__ import annotations

import hashlib
import typing
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request, Response, params
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.utils import create_model_field
from pydantic import BaseModel
from starlette._utils import get_route_path  # what Starlette's own Route.matches uses
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from app.db import READ_METHODS, TransactionRoute
from app.deps import Caller, if_match
from app.errors import error_responses
from app.pagination import MAX_LIMIT
from app.permissions import ROLE_PERMISSIONS, Permission

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size, 1–200.")]
Cursor = Annotated[
    str | None,
    Query(description="The `next_cursor` of the previous page."),
]
Search = Annotated[str | None, Query(min_length=1, max_length=200, description="Search by name.")]

ETAG_HEADER = {
    "ETag": {
        "description": 'The resource version, for If-Match (e.g. "3"), and for If-None-Match: '
        'it changes whenever the answer does ("3-5f2c9a1e" when it also shows what changes '
        "without the version, such as a breach found by the clock).",
        "schema": {"type": "string"},
    }
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of the copy you have: 304 without a body while it is current.",
    "schema": {"type": "string"},
}
NOT_MODIFIED = {"description": "Your copy (If-None-Match) is current.", "headers": ETAG_HEADER}
CREATED_HEADERS = {
    **ETAG_HEADER,
    "Location": {"description": "The new resource.", "schema": {"type": "string"}},
}


API_PREFIX = "/api/v1"


def operation_id(route: APIRoute) -> str:
    # Route functions are named <domain>_<action>: that name is the operationId.
    return route.name


IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A string unique to the request (a UUID, say): a retry with the same key "
    "and body within 24 h replays the first successful answer, with `Idempotent-Replayed: "
    "true`. The same key with another body is a 422; while the first request runs, a 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Query parameters that carry a cursor this API handed out: a made-up one is a 400.
CURSOR_PARAMETERS = frozenset({"cursor", "after"})


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)


def query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters an operation declares, its dependencies' included: the names a
    request may use (by their alias, as the client writes them: ``from``, not ``from_``)."""
    return frozenset(
        field.alias for d in (dependant, *_dependencies(dependant)) for field in d.query_params
    )


def refuse_unknown_query(query_string: bytes, allowed: frozenset[str]) -> None:
    """422 naming every query parameter not in ``allowed``: a mistyped filter
    (``?overdue=true`` where there is no such filter) would otherwise be ignored and answer
    the whole list as if it had been applied. Parsed as Starlette parses it."""
    unknown = [
        name
        for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        if name not in allowed
    ]
    if unknown:
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": "Unknown query parameter: this operation does not take it.",
                }
                for name in dict.fromkeys(unknown)
            ]
        )


def _callers(dependant: Dependant) -> list[Caller]:
    return [d.call for d in _dependencies(dependant) if isinstance(d.call, Caller)]


def _may_refuse(permission: Permission | None) -> bool:
    return permission is not None and not all(
        permission in granted for granted in ROLE_PERMISSIONS.values()
    )


def error_statuses(route: APIRoute) -> set[int]:
    """The problem statuses an operation can answer, read from what it declares: a caller
    (401; 403 when its permission is not every role's), a path id (404), parameters or a
    body (422; a JSON body or a cursor may also be malformed, 400), If-Match (412; 400 when
    it is no entity tag), a write (409: a duplicate, a rule or a constraint), an
    authenticated POST (Idempotency-Key: 400, 409, 413, 422). Every /api/v1 request is rate
    limited (429), uses the database (503) and may name a query parameter the operation
    does not take (422, ``refuse_unknown_query``). What a service's own rules refuse beyond
    that, its route adds to ``responses``."""
    dependant = route.dependant
    statuses = {422, 429, 503}
    callers = _callers(dependant)
    if callers:
        statuses.add(401)
    if any(_may_refuse(caller.permission) for caller in callers):
        statuses.add(403)
    if dependant.path_params or any(
        _names_a_record(f.field_info.annotation) for f in dependant.body_params
    ):
        statuses.add(404)
    if dependant.body_params and not any(
        isinstance(f.field_info, params.Form) for f in dependant.body_params
    ):
        statuses.add(400)
    if any(f.name in CURSOR_PARAMETERS for f in dependant.query_params):
        statuses.add(400)
    if any(d.call is if_match for d in _dependencies(dependant)):
        statuses |= {400, 412}
    if route.methods & WRITE_METHODS and callers:
        statuses.add(409)
    if "POST" in route.methods and callers:
        statuses |= {400, 409, 413, 422}
    return statuses


def _names_a_record(annotation: Any) -> bool:
    """Whether a body of this type refers to another record by id (which the service looks
    up in the caller's scope: 404 when it is not there)."""
    if annotation is uuid.UUID:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(_names_a_record(f.annotation) for f in annotation.model_fields.values())
    return any(_names_a_record(arg) for arg in typing.get_args(annotation))


class ApiRoute(TransactionRoute):
    """A /api/v1 route: documents the errors it can answer (``error_statuses``) and the
    ``Idempotency-Key`` header where the middleware honours it (``app.idempotency``: every
    POST of an authenticated caller), and turns away a path not starting with its literal
    prefix (the path up to its first parameter) before trying its regular expression.

    Starlette tries the app's routes in order until one matches, each with its regular
    expression: a hundred of them for a route near the end of the list. Comparing the
    prefix first costs a fraction of that and answers the same (FastAPI's included-router
    matching, which rewrites the path it matches, is left to the plain route).

    A query parameter the operation does not declare is a 422 (``refuse_unknown_query``),
    before anything else runs: the declared names are read once, here, and a request
    without a query string is not looked at.
    """

    def __init__(self, path: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        self.literal_prefix = path.split("{", 1)[0]
        self.query_names: frozenset[str] | None = None
        if path.startswith(API_PREFIX):
            self.query_names = query_names(self.dependant)
            self._document_errors()
            if "POST" in self.methods and _callers(self.dependant):
                extra = dict(self.openapi_extra or {})
                extra["parameters"] = [*extra.get("parameters", []), IDEMPOTENCY_KEY_PARAMETER]
                self.openapi_extra = extra
        if self.conditional:
            extra = self.openapi_extra or {}
            parameters = [*extra.get("parameters", ()), IF_NONE_MATCH]
            self.openapi_extra = {**extra, "parameters": parameters}
            self.responses = {**self.responses, 304: NOT_MODIFIED}

    def _document_errors(self) -> None:
        # The route's own entries (a description of its own, an extra status) win.
        derived = error_responses(*sorted(error_statuses(self) - self.responses.keys()))
        self.responses = {**self.responses, **derived}
        for status, response in derived.items():
            self.response_fields[status] = create_model_field(
                name=f"Response_{status}_{self.unique_id}",
                type_=response["model"],
                mode="serialization",
            )

    @property
    def conditional(self) -> bool:
        """A GET documented to answer an ETag honours If-None-Match (``get_route_handler``)."""
        documented = self.responses.get(200, {}).get("headers", {})
        return "GET" in self.methods and "ETag" in documented

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not self.conditional:
            return handler

        async def conditional_get(request: Request) -> Response:
            # After the handler, so the request's transaction ended as for any answer (a read
            # may escalate a complaint): a 304 spares sending the body, not reading it.
            response = await handler(request)
            wanted = _if_none_match(request.scope)
            if wanted is not None and response.status_code == 200:
                tag = response.headers.get("etag")
                if tag is not None and none_match_names(wanted, tag):
                    return not_modified(response)
            return response

        return conditional_get

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A method this route does not serve is left to Starlette's 405 (super().handle).
        if (
            scope["query_string"]
            and self.query_names is not None
            and scope["method"] in self.methods
        ):
            refuse_unknown_query(scope["query_string"], self.query_names)
        await super().handle(scope, receive, send)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (
            scope["type"] == "http"
            and not get_route_path(scope).startswith(self.literal_prefix)
            and "fastapi" not in scope
        ):
            return Match.NONE, {}
        return super().matches(scope)


# nginx's "client closed request": logged and counted, never seen by the client.
CLIENT_CLOSED_REQUEST = 499


class ReportRoute(ApiRoute):
    """A report's route (GET): the request waits for a place in the process's reports lane
    (``app.lanes``) before its transaction opens, and keeps it until the answer is built.

    A client that left while its report waited a second or more (a timeout, a closed
    dashboard) gets nothing run for it: the place goes to the next report at once. The look
    at the connection is made only after such a wait: made after every wait, it cost a storm
    of reports about 7% of what the server answered (bench/README.md, twelfth pass)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def in_reports_lane(request: Request) -> Response:
            lane = request.app.state.report_lane
            async with lane.place() as stale:
                # Only a request without a body may be asked: the look reads (and would
                # drop) the next message from the client.
                if stale and request.method in READ_METHODS and await request.is_disconnected():
                    lane.abandoned()
                    return Response(status_code=CLIENT_CLOSED_REQUEST)
                return await handler(request)

        return in_reports_lane


def api_router(
    prefix: str,
    tag: str,
    responses: dict[int | str, dict[str, Any]] | None = None,
    route_class: type[ApiRoute] = ApiRoute,
) -> APIRouter:
    """A domain's routes, each with its whole path (``/api/v1`` and ``prefix``) and the
    errors it can answer (``ApiRoute``); ``responses`` adds what every route of the domain
    may answer beyond those."""
    return APIRouter(
        prefix=API_PREFIX + prefix,
        tags=[tag],
        responses=responses,
        generate_unique_id_function=operation_id,
        route_class=route_class,
    )


def sort_member_name(value: str) -> str:
    """A generated client's name for a ``sort`` value: ``name`` → ``NAME``, ``-name`` →
    ``NAME_DESC`` (generators otherwise number the descending ones ``VALUE_1``…)."""
    return value.removeprefix("-").upper() + ("_DESC" if value.startswith("-") else "")


def name_sort_values(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with ``x-enum-varnames`` (read by openapi-python-client and
    openapi-generator) beside the values of every operation's ``sort`` parameter."""
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                values = parameter["schema"].get("enum") if parameter["name"] == "sort" else None
                if values:
                    parameter["schema"]["x-enum-varnames"] = [sort_member_name(v) for v in values]
    return document


def etag(version: int, unversioned: Sequence[Any] = ()) -> str:
    """The entity tag of an answer showing ``version`` of a row: ``"<version>"``, or, when
    the answer also shows ``unversioned`` values (what can change while the version stays:
    the clock's verdicts, other rows' sums, the server's bookkeeping; see
    ``ResourceRead.unversioned``) that are not all empty, ``"<version>-<digest of them>"``.

    The version leads, so If-Match (``app.deps.if_match``) reads it from either form: a write
    conflicts with other writes, not with the clock."""
    if not any(unversioned):
        return f'"{version}"'
    digest = hashlib.blake2b(repr(tuple(unversioned)).encode(), digest_size=4).hexdigest()
    return f'"{version}-{digest}"'


def created(
    response: Response, location: str, version: int, unversioned: Sequence[Any] = ()
) -> None:
    response.headers["Location"] = location
    response.headers["ETag"] = etag(version, unversioned)


def with_etag(response: Response, version: int, unversioned: Sequence[Any] = ()) -> None:
    response.headers["ETag"] = etag(version, unversioned)


def _if_none_match(scope: Scope) -> str | None:
    # The raw headers (lower-case names, as ASGI has them) looked through at once: asking
    # ``request.headers`` for a header that is absent, as it nearly always is, cost four
    # times as much (a KeyError raised and caught inside the mapping).
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            return bytes(value).decode("latin-1")
    return None


def none_match_names(header: str, tag: str) -> bool:
    """Whether an If-None-Match value names ``tag``, or is ``*`` (RFC 9110 13.1.2: the weak
    comparison, so ``W/"3"`` names ``"3"``)."""
    if header.strip() == "*":
        return True
    opaque = tag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == opaque for candidate in header.split(","))


# What a 304 repeats of the 200 it stands for (RFC 9110 15.4.5).
_NOT_MODIFIED_HEADERS = ("etag", "cache-control", "content-location", "expires", "vary")


def not_modified(response: Response) -> Response:
    """The 304 standing for ``response``: no body, the headers a cache needs."""
    headers = {
        name: response.headers[name] for name in _NOT_MODIFIED_HEADERS if name in response.headers
    }
    return Response(status_code=304, headers=headers)


def ok_with_etag(
    description: str = "OK", errors: tuple[int, ...] = ()
) -> dict[int | str, dict[str, Any]]:
    """A 200 with its ETag, and ``errors`` the service's rules may answer beyond those the
    route's declarations imply (``error_statuses``)."""
    return {200: {"description": description, "headers": ETAG_HEADER}, **error_responses(*errors)}


def created_with_headers(errors: tuple[int, ...] = ()) -> dict[int | str, dict[str, Any]]:
    return {201: {"description": "Created", "headers": CREATED_HEADERS}, **error_responses(*errors)}
