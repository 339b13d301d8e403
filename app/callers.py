"""Who is calling, remembered between requests until a user or the settings change.

Every authenticated request needs its caller's role, region and active flag, and most need
the department settings; reading them was one query per request, about a fifth of the CPU of
a short read (bench/README.md). A process remembers them while it can hear every change:

- A transaction that adds, changes or deletes a user or the settings row through the ORM
  sends ``pg_notify('salesdesk_callers')``. PostgreSQL delivers it when (and only if) the
  transaction commits, to one listening connection in every server process, and each of them
  forgets everything it remembered.
- The process that made the change forgets at once, when its transaction commits, before the
  answer goes out, so its own next request never sees the old row.
- A process remembers only while its listening connection is up. Before it connects, while a
  restart of the database has dropped it, and until it has connected again, every request
  reads its caller from the database as before; reconnected, it starts from nothing.
- A read that began before a change and ends after the process forgot is not remembered
  (each read notes the generation it started in).

So a deactivation, a new role or region, or a settings edit applies to every process's next
request, as when every request read the row, give or take the instant PostgreSQL takes to
deliver the notice to other processes. A change made with plain SQL outside the app sends no
notice: run ``SELECT pg_notify('salesdesk_callers', '')`` after it, or restart the servers.

SQLite has no notifications: there every request reads its caller (the embedded default is one
process). ``SALESDESK_REMEMBER_CALLERS=false`` turns remembering off on PostgreSQL too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, object_session
from sqlalchemy.pool import Pool

from app.models.people import User
from app.models.performance import SettingsRecord
from app.permissions import Actor
from app.services.department import DepartmentSettings

CHANNEL = "salesdesk_callers"
LISTENER_NAME = "salesdesk-listener"
"""The listening connection's ``application_name``, to tell it apart in ``pg_stat_activity``."""
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', :sender)")
_CHANGED = "callers_changed"
# More distinct callers than this between two changes and the process starts again from none:
# a bound on memory, far above a department's head count.
_MAX_CALLERS = 10_000

logger = logging.getLogger("salesdesk.callers")


class CallerCache:
    """The callers (and the settings) one process remembers; see the module's text."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.listening = False
        self.generation = 0
        # Sent with this process's notices: it forgot when its own transaction committed, and
        # its notice, arriving later, would otherwise make it forget again what it read since.
        self.sender = uuid.uuid4().hex
        self._actors: dict[uuid.UUID, Actor] = {}
        self._settings: DepartmentSettings | None = None
        # Found again by the connection pool a committing session used (its engine with
        # other execution options shares the pool). ``dispose()`` gives the engine a new
        # pool: the cache follows it there.
        _CACHES[engine.sync_engine.pool] = self
        event.listen(engine.sync_engine, "engine_disposed", self._follow_new_pool)

    def _follow_new_pool(self, engine: Any) -> None:
        _CACHES[engine.pool] = self

    def get(self, user_id: uuid.UUID) -> tuple[Actor, DepartmentSettings] | None:
        """The active caller with this id and the settings in force, if remembered."""
        if not self.listening or self._settings is None:
            return None
        actor = self._actors.get(user_id)
        return None if actor is None else (actor, self._settings)

    def remember(self, generation: int, actor: Actor, settings: DepartmentSettings) -> None:
        """Keep what a request read, unless the process forgot since the read began
        (``generation`` is ``self.generation`` as it was then) or cannot hear changes."""
        if not self.listening or generation != self.generation:
            return
        if len(self._actors) >= _MAX_CALLERS:
            self._actors.clear()
        self._actors[actor.id] = actor
        self._settings = settings

    def _on_notice(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload != self.sender:
            self.forget()

    def forget(self) -> None:
        self.generation += 1
        self._actors.clear()
        self._settings = None


# The cache of each database this process uses, by connection pool: a commit that changed a
# user forgets its own database's at once, and any other only when the notice arrives, as
# another process would (tests build several apps in one process; a server has one).
_CACHES: weakref.WeakKeyDictionary[Pool, CallerCache] = weakref.WeakKeyDictionary()


def _announce_change(_mapper: Any, connection: Connection, target: Any) -> None:
    """After a user or the settings row is inserted, updated or deleted in a flush."""
    session = object_session(target)
    if session is not None:
        session.info[_CHANGED] = True
    if connection.dialect.name == "postgresql":
        # Delivered at commit, to every listening process; never if the transaction rolls back.
        # Sent for every such row (PostgreSQL delivers one notice a transaction): one sent in
        # a savepoint that rolls back is dropped with it.
        cache = _CACHES.get(connection.engine.pool)
        connection.execute(_NOTIFY, {"sender": cache.sender if cache is not None else ""})


# Mapper events fire for these two tables' rows only, so other flushes pay nothing.
for _model in (User, SettingsRecord):
    for _name in ("after_insert", "after_update", "after_delete"):
        event.listen(_model, _name, _announce_change)


@event.listens_for(Session, "after_commit")
def _forget_on_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False) and session.bind is not None:
        cache = _CACHES.get(session.bind.pool)  # type: ignore[union-attr]
        if cache is not None:
            cache.forget()


@event.listens_for(Session, "after_rollback")
def _clear_mark(session: Session) -> None:
    session.info.pop(_CHANGED, None)


def _libpq_dsn(url: str | URL) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(
    cache: CallerCache,
    url: str | URL,
    stop: asyncio.Event,
    *,
    retry_seconds: float = 1.0,
    check_seconds: float = 5.0,
) -> None:
    """Keep one connection listening for changes until ``stop`` is set, connecting again
    ``retry_seconds`` after a failure; the cache remembers only while it is up."""
    dsn = _libpq_dsn(url)
    while not stop.is_set():
        try:
            await _listen_once(cache, dsn, stop, check_seconds)
        except Exception as exc:  # any failure of the connection: read callers afresh
            logger.warning("stopped listening for changes: %r", exc)
        finally:
            cache.listening = False
            cache.forget()
        await _sleep_unless(stop, retry_seconds)


async def _listen_once(
    cache: CallerCache, dsn: str, stop: asyncio.Event, check_seconds: float
) -> None:
    """Listen on one connection until ``stop`` or the connection is lost. It is checked every
    ``check_seconds`` too: a drop the socket does not report (a silent network) must not leave
    the cache trusting it."""
    import asyncpg

    try:
        connection = await asyncpg.connect(
            dsn, timeout=5, server_settings={"application_name": LISTENER_NAME}
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        logger.debug("cannot listen for changes yet: %r", exc)  # every request reads meanwhile
        return
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _connection: lost.set())
    try:
        await connection.add_listener(CHANNEL, cache._on_notice)
        cache.forget()  # whatever was read before now may have missed a notice
        cache.listening = True
        while True:
            await _sleep_unless(stop, check_seconds, lost)
            if stop.is_set() or lost.is_set():
                return
            await connection.execute("SELECT 1", timeout=check_seconds)
    finally:
        cache.listening = False
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), 2)


async def _sleep_unless(stop: asyncio.Event, seconds: float, *also: asyncio.Event) -> None:
    """Wait ``seconds``, or less if ``stop`` (or any of ``also``) is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in (stop, *also)]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
