"""Engine, sessions and the one transaction per request.

Writers on SQLite open their transaction with ``BEGIN IMMEDIATE`` so that two concurrent
writers queue on the database lock instead of failing with ``SQLITE_BUSY_SNAPSHOT`` half-way
through; readers keep plain deferred transactions and never block.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute
from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, ExceptionContext
from sqlalchemy.exc import InvalidatePoolError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import await_

from app import pending_rows
from app.callers import CallerCache
from app.config import VAR_DIR, Settings
from app.pool import FairAsyncQueuePool

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the driver) emit BEGIN, so we choose its kind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _causes(error: BaseException | None) -> Iterator[BaseException]:
    """``error``, then what it wraps (SQLAlchemy's ``orig``) or was raised from, in turn."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = getattr(error, "orig", None) or error.__cause__


def connection_lost(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) says the connection to PostgreSQL failed or can no
    longer be trusted: refused or reset, dropped mid-query, the server shutting down or
    starting up, or the wire protocol left out of step by such a drop."""
    import asyncpg

    lost = (
        asyncpg.PostgresConnectionError,  # SQLSTATE class 08, "closed in the middle of operation"
        asyncpg.AdminShutdownError,  # 57P01: fast or smart shutdown
        asyncpg.CrashShutdownError,  # 57P02
        asyncpg.CannotConnectNowError,  # 57P03: starting up or shutting down
        asyncpg.exceptions.InternalClientError,  # protocol state broken by a drop
        OSError,
    )
    return any(
        isinstance(cause, lost)
        or (isinstance(cause, asyncpg.InterfaceError) and "connection is closed" in str(cause))
        for cause in _causes(error)
    )


def statement_cancelled(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) is PostgreSQL cancelling a statement: past the
    connections' ``statement_timeout``, or cancelled by an administrator (SQLSTATE 57014).
    The connection stays usable; the transaction is rolled back as after any error."""
    import asyncpg

    return any(isinstance(cause, asyncpg.QueryCanceledError) for cause in _causes(error))


async def _connect_asyncpg(*args: Any, **kwargs: Any) -> Any:
    """``asyncpg.connect``, with a refused or reset socket raised as a PostgreSQL connection
    error: SQLAlchemy wraps only driver errors, so a bare ``OSError`` would escape its
    ``handle_error`` hook (and the 503 mapping) and surface as a 500."""
    import asyncpg

    try:
        return await asyncpg.connect(*args, **kwargs)
    except OSError as exc:
        raise asyncpg.ConnectionFailureError(f"cannot connect to PostgreSQL: {exc}") from exc


def _configure_postgres(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        # asyncpg reports a dropped connection in ways SQLAlchemy does not all count as a
        # disconnect (a shutdown notice, a refused connect, a protocol out of step). Counting
        # them invalidates the connection instead of returning it to the pool, makes the
        # checkout ping reconnect rather than fail, and marks the error connection_invalidated,
        # which the error handlers answer with 503.
        if connection_lost(context.original_exception):
            context.is_disconnect = True


_IDLE_SINCE = "salesdesk_idle_since"


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """SQLAlchemy's ``pool_pre_ping``, for connections that sat idle ``idle_seconds`` or more,
    in one round trip.

    Its asyncpg pre-ping costs three round trips on every checkout (BEGIN, ``;``, ROLLBACK)
    and was the largest single cost of a short request. Under load a connection is handed out
    again milliseconds after its last answer: a ping then proves nothing the request's own
    first statement would not. A database restart or an idle timeout kills connections while
    they wait, so those are pinged as before; one found dead invalidates the whole pool, as
    pre-ping does. A drop in the instants after a connection's last use is caught by the
    ``handle_error`` hook below (503, the pool invalidated), as pre-ping would have failed
    too against a server that is going down.
    """
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _on_checkout(_dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return  # a new connection, or one that answered a moment ago
        try:
            # The simple query protocol: no prepared statement, no transaction. (Not ";":
            # asyncpg fails on the empty query's answer.)
            await_(record.driver_connection.execute("SELECT 1"))
        except Exception as exc:
            # Whatever a bare ";" fails with, the connection cannot be trusted: on a socket
            # the server closed during a restart asyncpg has raised AttributeError here.
            raise InvalidatePoolError(f"connection lost while idle: {exc!r}") from exc


def create_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    url = url or settings.database_url
    if url.startswith("sqlite"):
        if url.startswith("sqlite+aiosqlite:///./var/"):
            VAR_DIR.mkdir(parents=True, exist_ok=True)
        # An in-memory database is one connection SQLAlchemy keeps (StaticPool); a file has
        # a pool like PostgreSQL's.
        pool = {} if ":memory:" in url else {"poolclass": FairAsyncQueuePool}
        engine = create_async_engine(url, connect_args={"timeout": 15}, **pool)
        _configure_sqlite(engine)
        return engine
    is_asyncpg = url.startswith("postgresql+asyncpg")
    connect_args: dict[str, Any] = {}
    if is_asyncpg:
        # The hook SQLAlchemy's asyncpg adapter calls to open a connection (what its public
        # async_creator uses); unlike async_creator it still gets the URL's arguments.
        connect_args["async_creator_fn"] = _connect_asyncpg
        # Every statement planned for its own values. asyncpg prepares each statement once a
        # connection, and after five executions PostgreSQL may switch to a generic plan, made
        # without the values, when its estimate looks no worse: a report's figures for a
        # region's quarter then took 140 ms instead of 120 at scale (350 before the open
        # stages were constants), while planning the API's short statements anew measured
        # within the load benchmark's noise (bench/README.md, eleventh pass).
        server_settings = {"plan_cache_mode": "force_custom_plan"}
        if settings.db_statement_timeout_seconds:
            # A runaway or blocked statement would keep its pooled connection for as long as
            # it runs; set at connect, it costs no round trip.
            timeout_ms = max(1, round(settings.db_statement_timeout_seconds * 1000))
            server_settings["statement_timeout"] = str(timeout_ms)
        if not settings.db_jit:
            # JIT compiles plans the planner costs high; for an API's short queries that is
            # tens of milliseconds of compiling to save a few (see bench/README.md).
            server_settings["jit"] = "off"
        connect_args["server_settings"] = server_settings
    engine = create_async_engine(
        url,
        poolclass=FairAsyncQueuePool,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=not is_asyncpg,
        connect_args=connect_args,
    )
    _configure_postgres(engine)
    if is_asyncpg:
        _ping_when_idle(engine, settings.db_ping_idle_seconds)
    return engine


class Database:
    """One engine and the session factories for reading and writing through it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        # Remembers nothing until app.callers.listen connects (PostgreSQL, app start-up).
        self.callers = CallerCache(engine)
        sessions: dict[str, Any] = {
            "expire_on_commit": False,
            "autoflush": False,
            "sync_session_class": pending_rows.Session,
        }
        self.reader = async_sessionmaker(engine, **sessions)
        # PostgreSQL without BEGIN and COMMIT, for the routes marked autocommit_reads.
        self.autocommit_reader = (
            None
            if self.is_sqlite
            else async_sessionmaker(
                engine.execution_options(isolation_level="AUTOCOMMIT"), **sessions
            )
        )
        writer_engine = (
            engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else engine
        )
        self.writer = async_sessionmaker(writer_engine, **sessions)

    def session(self, *, write: bool = True) -> AsyncSession:
        return (self.writer if write else self.reader)()

    async def dispose(self) -> None:
        await self.engine.dispose()


_AUTOCOMMIT_ENDPOINTS: set[Callable[..., Any]] = set()
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def autocommit_reads(endpoint: Endpoint) -> Endpoint:
    """Mark a GET route whose statements need no transaction around them on PostgreSQL.

    A read-only request's transaction costs two round trips of its own (BEGIN, COMMIT),
    which on a short read were a sixth of its CPU. At PostgreSQL's READ COMMITTED (the
    app's level) every statement reads its own snapshot inside a transaction too, so a
    route that only runs SELECTs sees the same data either way. Only for routes that write
    nothing, lock nothing (FOR UPDATE) and set nothing per transaction (``SET LOCAL``, as
    the funnel, forecast and commissions do: ``services.sql.for_reports``); SQLite keeps
    its transaction, whose snapshot does span the request.
    """
    _AUTOCOMMIT_ENDPOINTS.add(endpoint)
    return endpoint


_TRANSACTION = "salesdesk.transaction"


class _Lease:
    """A connection lent to ``app.reads``: the driver's connection, and what to do when it
    is found lost (``pooled`` when it was checked out of the pool for the read alone)."""

    __slots__ = ("dialect", "pooled", "raw")

    def __init__(self, dialect: Dialect, raw: Any, pooled: PoolProxiedConnection | None) -> None:
        self.dialect = dialect
        self.raw = raw
        self.pooled = pooled

    def lost(self, error: BaseException) -> None:
        if self.pooled is not None:
            # As SQLAlchemy does on a disconnect: this connection and every one opened before
            # it are replaced (a restart of the database took them all), not only this one.
            self.pooled._pool._invalidate(self.pooled, error)  # type: ignore[attr-defined]


async def _session_lease(session: AsyncSession) -> _Lease:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return _Lease(connection.dialect, raw.driver_connection, None)


class RequestTransaction:
    """The request's one session and transaction, opened when a dependency first asks for it:
    committed by ``TransactionRoute`` once the answer is built, rolled back on any error."""

    __slots__ = ("autocommit", "database", "lease", "session", "write")

    def __init__(self, database: Database, *, write: bool, autocommit: bool) -> None:
        self.database = database
        self.write = write
        self.autocommit = autocommit and database.autocommit_reader is not None
        self.session: AsyncSession | None = None
        self.lease: _Lease | None = None

    async def open(self) -> AsyncSession:
        if self.session is None:
            database = self.database
            if self.autocommit:
                self.session = database.autocommit_reader()  # type: ignore[misc]
            else:
                self.session = database.session(write=self.write)
                await self.session.begin()
            self.session.info[_TRANSACTION] = self
        return self.session

    async def driver(self) -> _Lease:
        """The connection for ``app.reads``: the session's own, or, for an autocommit read
        whose session has not connected, one from the pool (returned at the end) without
        the session's machinery around it."""
        if self.lease is not None:
            return self.lease
        session = self.session
        if self.autocommit and (session is None or not session.in_transaction()):
            try:
                pooled = await self.database.engine.raw_connection()
            except Exception as exc:
                # The pool's checkout raises the driver's error as it is: SQLAlchemy wraps
                # (and its ``handle_error`` hook classifies) only errors of a Connection. A
                # refused connect or a database shutting down is a 503, as on the ORM path.
                if connection_lost(exc):
                    raise OperationalError("connect", None, exc) from exc
                raise
            self.lease = _Lease(self.database.engine.dialect, pooled.driver_connection, pooled)
        else:
            self.lease = await _session_lease(await self.open())
        return self.lease

    async def end(self, *, commit: bool) -> None:
        session, self.session = self.session, None
        lease, self.lease = self.lease, None
        if lease is not None and lease.pooled is not None:
            # Back to the pool without a round trip: nothing began on it, so its reset on
            # return (a rollback) has nothing to do.
            lease.pooled.close()
        if session is None:
            return
        if not session.in_transaction() and not session.identity_map:
            # Never used (an autocommit read answered on the lease): it holds no connection
            # and no objects, and closing it would only clear what is already empty.
            return
        try:
            if commit and session.in_transaction():
                await session.commit()
        finally:
            await session.close()  # rolls back whatever was not committed


async def driver_connection(session: AsyncSession) -> _Lease:
    """The connection ``app.reads`` runs on for this session: the request's (see
    ``RequestTransaction.driver``) or, outside a request, the session's own. Rows the session
    has queued (``app.pending_rows``) are written first, as before any of its statements."""
    if pending_rows.pending(session):
        await session.run_sync(pending_rows.write)
    transaction: RequestTransaction | None = session.info.get(_TRANSACTION)
    if transaction is not None:
        return await transaction.driver()
    return await _session_lease(session)


class TransactionRoute(APIRoute):
    """A route whose request runs in one transaction, ended after the answer is serialised.

    FastAPI's dependency with ``yield`` did the same through an exit stack and a context
    manager per request, about a tenth of a short read's CPU; the route's handler ends the
    transaction itself. Serialising inside it also means the answer never shows data that a
    failed commit did not store: a commit that fails is an error answer, not a 200.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        autocommit = self.endpoint in _AUTOCOMMIT_ENDPOINTS

        async def run_in_transaction(request: Request) -> Response:
            transaction = RequestTransaction(
                request.app.state.database,
                write=request.method not in READ_METHODS,
                autocommit=autocommit and request.method in READ_METHODS,
            )
            request.scope[_TRANSACTION] = transaction
            try:
                response = await handler(request)
            except BaseException:
                await transaction.end(commit=False)
                raise
            await transaction.end(commit=True)
            return response

        return run_in_transaction


async def get_session(request: Request) -> AsyncSession:
    """The request's session, in its one transaction (``TransactionRoute``)."""
    transaction: RequestTransaction | None = request.scope.get(_TRANSACTION)
    if transaction is None:
        raise RuntimeError(f"{request.url.path}: the route is not a TransactionRoute")
    return await transaction.open()
