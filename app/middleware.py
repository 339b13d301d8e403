"""ASGI middleware: access log and metrics per request, and the last-resort error answer."""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import unexpected_error_response

logger = logging.getLogger("salesdesk.access")

REQUESTS = Counter(
    "salesdesk_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "salesdesk_http_request_duration_seconds", "Time to answer a request", ["method", "route"]
)


def _route_template(scope: Scope) -> str:
    """The matched route's path template (``/api/v1/customers/{customer_id}``), so metrics
    get one series per route rather than one per id; ``unmatched`` when nothing matched."""
    # Every route sits on the app itself with its whole path (app.main), so its template is
    # the one the request matched.
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else "unmatched"


class AccessLogMiddleware:
    """Logs one line per request and feeds the Prometheus metrics, by route template.

    It also answers unhandled exceptions itself. Starlette would render them in its
    outermost ``ServerErrorMiddleware``, outside the correlation-id middleware, so the 500
    would go out without its ``X-Request-ID`` header and be counted here as a non-answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_status(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception as exc:
            if response_started:
                raise
            # Logged with its traceback by unexpected_error_response; not re-raised, or the
            # server would log it a second time without the request id.
            await unexpected_error_response(exc)(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(elapsed)
            logger.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
