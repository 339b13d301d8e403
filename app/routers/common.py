"""What every router shares: error documentation, list parameters, response helpers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.routing import APIRoute
from starlette._utils import get_route_path  # what Starlette's own Route.matches uses
from starlette.routing import Match
from starlette.types import Scope

from app.db import READ_METHODS, TransactionRoute
from app.errors import error_responses
from app.pagination import MAX_LIMIT

# Every API route may answer these; documenting them keeps generated clients honest.
STANDARD_ERRORS = error_responses(400, 401, 403, 404, 409, 412, 422, 429, 503)

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


class ApiRoute(TransactionRoute):
    """A route that turns away a path not starting with its literal prefix (the path up to
    its first parameter) before trying its regular expression.

    Starlette tries the app's routes in order until one matches, each with its regular
    expression: a hundred of them for a route near the end of the list. Comparing the
    prefix first costs a fraction of that and answers the same (FastAPI's included-router
    matching, which rewrites the path it matches, is left to the plain route).
    """

    def __init__(self, path: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        self.literal_prefix = path.split("{", 1)[0]
        if self.conditional:
            extra = self.openapi_extra or {}
            parameters = [*extra.get("parameters", ()), IF_NONE_MATCH]
            self.openapi_extra = {**extra, "parameters": parameters}
            self.responses = {**self.responses, 304: NOT_MODIFIED}

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
    responses: dict[int | str, dict[str, Any]] = STANDARD_ERRORS,
    route_class: type[ApiRoute] = ApiRoute,
) -> APIRouter:
    """A domain's routes, each with its whole path (``/api/v1`` and ``prefix``)."""
    return APIRouter(
        prefix=API_PREFIX + prefix,
        tags=[tag],
        responses=responses,
        generate_unique_id_function=operation_id,
        route_class=route_class,
    )


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


def ok_with_etag(description: str = "OK") -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "headers": ETAG_HEADER}}


def created_with_headers() -> dict[int | str, dict[str, Any]]:
    return {201: {"description": "Created", "headers": CREATED_HEADERS}}
