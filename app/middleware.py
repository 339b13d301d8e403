"""The one ASGI middleware around every request: its id, the rate limits, the access log and
metrics, and the last-resort error answer."""

from __future__ import annotations

import logging
import random
import time

from asgi_correlation_id import correlation_id
from asgi_correlation_id.middleware import is_valid_uuid4
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import unexpected_error_response
from app.ratelimit import RateLimits

logger = logging.getLogger("salesdesk.access")
id_logger = logging.getLogger("salesdesk.request_id")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = b"x-request-id"
_AUTHORIZATION = b"authorization"

REQUESTS = Counter(
    "salesdesk_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "salesdesk_http_request_duration_seconds", "Time to answer a request", ["method", "route"]
)
# The metrics' children by labels: ``labels()`` checks and locks on every call, and a
# server answers the same few hundred combinations over and over.
_SERIES: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def _series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    key = (method, route, status)
    found = _SERIES.get(key)
    if found is None:
        found = (REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route))
        _SERIES[key] = found
    return found


def _route_template(scope: Scope) -> str:
    """The matched route's path template (``/api/v1/customers/{customer_id}``), so metrics
    get one series per route rather than one per id; ``unmatched`` when nothing matched."""
    # Every route sits on the app itself with its whole path (app.main), so its template is
    # the one the request matched.
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else "unmatched"


def _new_request_id() -> str:
    # 32 hex digits like uuid4().hex, without its system call for random bytes: a request
    # id must be unique, not unguessable (it is logged and sent back, never trusted).
    return f"{random.getrandbits(128):032x}"


class RequestMiddleware:
    """What every request passes through first, in one layer rather than three (request id,
    access log, rate limit: each wrapped ``send`` and parsed the headers again).

    - ``X-Request-ID``: the caller's, when it is a UUID (or 32 hex digits, as nginx's and
      OpenTelemetry's ids are), else a new one; on the answer, and in every log line of
      the request (``asgi_correlation_id``'s context variable and log filter).
    - The rate limits (``app.ratelimit``): every limited answer carries ``RateLimit-Policy``
      and ``RateLimit``; a 429 is logged and carries the request id.
    - One access log line and the Prometheus metrics per request, by route template.
    - Unhandled exceptions are answered here: Starlette would render them in its outermost
      ``ServerErrorMiddleware``, outside this one, without the request id and uncounted.
    """

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given: str | None = None
        authorization: str | None = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID:
                given = value.decode("latin-1")
            elif name == _AUTHORIZATION:
                authorization = value.decode("latin-1")
        if given and is_valid_uuid4(given):
            request_id = given
        else:
            request_id = _new_request_id()
            if given:
                id_logger.warning("replaced an X-Request-ID that is not a UUID: %r", given[:64])
        correlation_id.set(request_id)
        added: tuple[tuple[bytes, bytes], ...] = ((_REQUEST_ID, request_id.encode("latin-1")),)
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        try:
            refusal, limit_headers = self.limits.check(scope, authorization)
            if limit_headers:
                added += limit_headers
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if response_started:
                raise
            # Logged with its traceback by unexpected_error_response; not re-raised, or the
            # server would log it a second time without the request id.
            await unexpected_error_response(exc)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method, path = scope["method"], scope["path"]
            route = _route_template(scope)
            count, latency = _series(method, route, status)
            count.inc()
            latency.observe(elapsed)
            logger.info(
                "%s %s %s",
                method,
                path,
                status,
                extra={
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
