"""The application factory."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.middleware.gzip import GZipMiddleware

from app import (
    audit,  # noqa: F401  (registers the audit hook on every session)
    cors,
    docs,
    migrations,
)
from app.callers import listen
from app.config import Settings, get_settings
from app.db import Database, create_engine
from app.errors import install_error_handlers
from app.event_payloads import install_webhooks
from app.idempotency import IdempotencyMiddleware
from app.lanes import Lane
from app.logging import configure_logging
from app.middleware import RequestMiddleware
from app.ratelimit import RateLimits
from app.routers import (
    activity,
    auth,
    complaints,
    contracts,
    customers,
    follow_ups,
    health,
    opportunities,
    people,
    performance,
    products,
    quotes,
    targets,
    webhooks,
)
from app.routers import settings as settings_routes
from app.routers.common import ApiRoute, name_sort_values, operation_id
from app.webhooks.messages import parse_retry_delays
from app.worker import run_forever

DESCRIPTION = """
Salesdesk is the back end of a sales department's CRM: customers and follow-ups, the
pipeline, quotes, contracts, complaints and performance.

* Authenticate with `POST /api/v1/auth/token` and send `Authorization: Bearer <token>`.
* Errors are RFC 9457 problem details (`application/problem+json`).
* Lists use keyset pagination: pass `next_cursor` back as `cursor`.
* `POST` accepts an `Idempotency-Key` header; mutable resources carry `ETag` and honour `If-Match`.
"""


# Answers from this size on are compressed for clients that accept gzip: lists, reports, the
# OpenAPI document and the documentation's scripts. Below it the few bytes saved are not
# worth the CPU (a single record is about 1 KB). Level 6, zlib's own default, compresses the
# OpenAPI document to within 4% of level 9 (22 KB from 370 KB) in half the time.
GZIP_MINIMUM_SIZE = 4096
GZIP_LEVEL = 6

_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

_frozen = False
# Container objects allocated, net of those freed, before the collector looks at the young
# ones (CPython's default is 700).
YOUNG_GENERATION_THRESHOLD = 10_000


def _freeze_start_up_objects() -> None:
    """Move everything alive after start-up to the collector's permanent generation, and
    let the young generation grow past what requests in flight hold; once a process.

    The loaded modules, routes, models, SQLAlchemy metadata and pydantic schemas are some
    230,000 objects that live as long as the process; every full collection (about once per
    hundred requests) walked them all, 0.4 ms a request on average (bench/README.md). Frozen,
    they are never walked again; reference counting still frees any of them that is dropped.

    At the default threshold of 700, the objects of 32 requests in flight set off a young
    collection every few requests: under read load, thousands of them found no garbage at
    all, only moved live request objects on to the older generations, whose collections
    then paused the server for 5-18 ms. With room for what is in flight, young collections
    happen when garbage cycles (the ORM's, a few dozen objects a write) have piled up: a
    tenth to a hundredth of the collector's work, and shorter tails (bench/README.md).

    Once per process: a second app in the same process (the tests build hundreds) would
    otherwise freeze the garbage cycles of the first for good.
    """
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()  # what is garbage now is freed, not frozen
    gc.freeze()
    size_young_generation()


def size_young_generation() -> None:
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        # Without a key every authenticated request would fail: refuse to start instead.
        settings.signing_key()
        app.state.database = database or Database(create_engine(settings))
        # The in-process worker (webhook delivery, housekeeping); `serve --no-worker` and
        # SALESDESK_RUN_WORKER=false leave that to `salesdesk worker` processes.
        stop = asyncio.Event()
        worker = None
        if settings.run_worker:
            parse_retry_delays(settings.webhook_retry_delays)  # a bad setting stops start-up
            worker = asyncio.create_task(run_forever(app.state.database, settings, stop))
        listener = None
        if settings.remember_callers and not app.state.database.is_sqlite:
            db = app.state.database
            listener = asyncio.create_task(listen(db.callers, db.engine.url, stop))
        _freeze_start_up_objects()
        try:
            yield
        finally:
            stop.set()
            if listener is not None:
                await listener
            if worker is not None:
                try:
                    await asyncio.wait_for(worker, settings.webhook_timeout_seconds + 5)
                except (TimeoutError, asyncio.CancelledError):
                    pass  # an unfinished attempt is retried when its lease ends
                except Exception:
                    logging.getLogger("salesdesk.worker").exception("worker failed")
            if owned:
                await app.state.database.dispose()

    app = FastAPI(
        title="Salesdesk API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # app.docs serves them from local files
        redoc_url=None,
        generate_unique_id_function=operation_id,
        telemetry=None if settings.otel_enabled else _NO_TELEMETRY,
        openapi_tags=[
            {"name": "auth", "description": "Tokens and the current user."},
            {"name": "regions", "description": "Sales regions (the director manages them)."},
            {"name": "users", "description": "Directors, regional managers and reps."},
            {"name": "customers", "description": "Customers, classification and ownership."},
            {"name": "contacts", "description": "People at a customer."},
            {"name": "follow-ups", "description": "Calls, visits and meetings, planned or done."},
            {"name": "products", "description": "The product catalogue."},
            {"name": "opportunities", "description": "The pipeline: stages, gates and history."},
            {"name": "quotes", "description": "Quotes, lines and discount approval."},
            {"name": "approvals", "description": "What waits for your approval."},
            {
                "name": "contracts",
                "description": "Contracts: review, payment plans, deliveries, payments and "
                "receivables.",
            },
            {
                "name": "complaints",
                "description": "Customer complaints: handling, SLA breaches and escalation.",
            },
            {"name": "events", "description": "The event feed, for integrations that poll."},
            {
                "name": "webhooks",
                "description": "Signed event deliveries to your endpoints (director).",
            },
            {"name": "targets", "description": "Sales targets and their allocation."},
            {"name": "market-sizes", "description": "Market size per region and period."},
            {
                "name": "performance",
                "description": "Summary, leaderboard, funnel, forecast, commissions.",
            },
            {"name": "settings", "description": "The department's rules (director)."},
            {"name": "audit", "description": "Who changed what, when."},
            {"name": "health", "description": "Liveness, readiness and metrics."},
        ],
    )
    app.state.settings = settings  # what routes read through app.deps.AppSettingsDep
    app.state.migration_head = migrations.head()  # what /readyz compares the database with
    if database is not None:
        app.state.database = database
    build_document = app.openapi
    # FastAPI keeps the document it built in app.openapi_schema: named once, served as is.
    app.openapi = lambda: app.openapi_schema or name_sort_values(build_document())  # type: ignore[method-assign]
    install_error_handlers(app)
    install_webhooks(app)
    app.router.route_class = ApiRoute  # for routes added to the app directly

    # The domains' routes join the app's own list (each already has its whole path, tags,
    # documented errors and operationId: routers.common.api_router) rather than being
    # included: FastAPI matches an included router by asking it for its routes' match, then
    # matches again inside it, re-checking it for changes each time, which doubled the cost
    # of finding a route (35 → 17 µs for a customer, 145 → 70 µs for the summary, the last
    # domain). The routes, their order and the OpenAPI document are the same.
    for router in (
        auth.router,
        people.regions,
        people.users,
        customers.router,
        customers.contacts,
        follow_ups.router,
        products.router,
        opportunities.router,
        quotes.router,
        quotes.approvals,
        contracts.router,
        contracts.deliveries,
        contracts.receivables,
        complaints.router,
        targets.targets,
        targets.market_sizes,
        performance.router,
        settings_routes.router,
        activity.events,
        activity.audit,
        webhooks.router,
        health.router,
    ):
        app.router.routes.extend(router.routes)
    docs.install(app)

    # Added inside out: the last one added runs first. app.state holds the rate limits'
    # counters for the login throttle (routers/auth.py) and for tests.
    app.add_middleware(IdempotencyMiddleware)
    # Outside the idempotency layer, so a replayed answer is compressed like the first one;
    # inside the request layer, whose headers join the compressed answer's.
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_SIZE, compresslevel=GZIP_LEVEL)
    app.state.rate_limits = RateLimits.from_settings(settings)
    app.state.report_lane = Lane(
        "reports", settings.report_concurrency, settings.report_wait_seconds
    )
    app.add_middleware(RequestMiddleware, limits=app.state.rate_limits)
    # Outermost, and only when some origin is allowed (server-to-server callers pay nothing):
    # a preflight is answered before the rate limits, and every answer, errors included,
    # carries the headers a browser needs to show it to the page (app.cors).
    if settings.cors_allowed:
        app.add_middleware(cors.CORS, **cors.options(settings.cors_allowed))
    return app
