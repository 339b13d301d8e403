"""Engine, sessions and the one-transaction-per-request dependency.

Writers on SQLite open their transaction with ``BEGIN IMMEDIATE`` so that two concurrent
writers queue on the database lock instead of failing with ``SQLITE_BUSY_SNAPSHOT`` half-way
through; readers keep plain deferred transactions and never block.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import VAR_DIR, Settings

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


def create_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    url = url or settings.database_url
    if url.startswith("sqlite"):
        if url.startswith("sqlite+aiosqlite:///./var/"):
            VAR_DIR.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 15})
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
    )


class Database:
    """One engine and the session factories for reading and writing through it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.reader = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        writer_engine = (
            engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else engine
        )
        self.writer = async_sessionmaker(writer_engine, expire_on_commit=False, autoflush=False)

    def session(self, *, write: bool = True) -> AsyncSession:
        return (self.writer if write else self.reader)()

    async def dispose(self) -> None:
        await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's one transaction: committed when the route returns, rolled back on error."""
    database: Database = request.app.state.database
    async with database.session(write=request.method not in READ_METHODS) as session:
        async with session.begin():
            yield session
