"""The least any implementation of the load benchmark's routes must do, as a yardstick.

Starlette and an asyncpg pool; every route verifies the HS256 access token with python-jose
(the key the real app uses), keeps to the caller's scope, and answers the same JSON fields
as the real app. No ORM, no settings object, no access log, no middleware. The writes
write what the real app writes (the same rows, audit entries and events: checked side by
side when this was written), by hand, in as few statements as that takes.

- ``GET /api/v1/customers/{id}``: one primary-key query with the caller's scope in it, no
  transaction. Every answer shows the names beside its ids as the app's do (the owner's, the
  customer's), looked up in the query that reads the row.
- ``GET /api/v1/customers?limit=50``: the first page of the caller's live customers, newest
  first (one keyset query of ``limit`` + 1 rows, the derived status, the next page's cursor),
  encoded with orjson as Salesdesk's pages are (the one-object answers keep Starlette's
  ``JSONResponse``, as read-one's yardstick always had).
- ``POST /api/v1/follow-ups`` (a done or planned contact, as ``bench/requests.lua`` sends):
  what the API's contract makes every implementation write in one transaction, in the
  fewest round trips written by hand: the customer read with its scope and the department's
  cadence for its class (one query), then one statement that inserts the follow-up, moves
  the customer's last contact and next due date (with its version), writes the audit
  entries of both and the ``follow_up.created`` event, then the commit. Four round trips
  (``BEGIN`` included) against Salesdesk's six.
- ``POST /api/v1/opportunities/{id}/transitions``, the moves ``bench/requests.lua`` makes
  (one open stage forward where no gate stands, back to an earlier one with a note; any
  other move is answered 409): the opportunity read with its scope, together with the
  stamp of its earlier changes for the funnel and when it entered its stage (one
  statement), then one statement that moves it (with its version), adds its stage change,
  its audit entry and the ``opportunity.stage_changed`` event, then the commit.
- ``GET /api/v1/performance/summary``: the app's own statement for the East manager's
  summary (``BENCH_MINIMAL_SUMMARY``, a pickle ``bench.summary_statements`` writes), its
  rows out as JSON, at most four at a time (``BENCH_MINIMAL_REPORTS``, 0 for no bound), as
  the app's reports lane lets run. The figures' SQL is a report's substance, so this is the
  floor under the app's summary: the same database work, without the framework, the ORM or
  the arithmetic that turns the rows into figures.

The pool's connections keep PostgreSQL's defaults (the app's plan every statement for its
values; at this data's size PostgreSQL does so for the summary's statement anyway).

    SALESDESK_SECRET_KEY=… BENCH_MINIMAL_DSN=postgresql://… uvicorn bench.minimal_app:app
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import logging
import os
import pickle
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from jose import JWTError, jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

KEY = os.environ["SALESDESK_SECRET_KEY"]
DSN = os.environ["BENCH_MINIMAL_DSN"]
# The real app's pool: pool_size + max_overflow connections at most.
POOL_SIZE = int(os.environ.get("BENCH_MINIMAL_POOL", "20"))
DORMANT_AFTER = timedelta(days=180)

_COLUMNS = (
    "id, version, created_at, updated_at, name, industry, address, phone, email, source, "
    "needs, classification, suggested_classification, classification_overridden, "
    "classification_reason, classified_by_id, classified_at, status, owner_id, region_id, "
    "last_follow_up_at, follow_up_due_at,"
    # The owner's name beside the id, as the app shows it: one look-up in the same query.
    " (SELECT u.full_name FROM users u WHERE u.id = customers.owner_id) AS owner_name"
)


def _scope(prefix: str, param: int) -> dict[str, str]:
    """By role, the condition that keeps a query to the caller's rows (``prefix``: the
    table's alias and a dot, or nothing), its value the ``param``-th argument."""
    return {
        "director": "",
        "regional_manager": f" AND {prefix}region_id = ${param}",
        "rep": f" AND {prefix}owner_id = ${param}",
    }


_SCOPE = _scope("", 2)  # after the row's id
_PAGE_SCOPE = _scope("", 1)
_pool: asyncpg.Pool | None = None
_log = logging.getLogger("bench.minimal_app")
_UTC_Z = orjson.OPT_UTC_Z


def _status(row: asyncpg.Record) -> str:
    """The derived status: ``dormant`` when not followed up (or created) for long."""
    last = row["last_follow_up_at"] or row["created_at"]
    if row["status"] != "lost" and last < datetime.now(UTC) - DORMANT_AFTER:
        return "dormant"
    return str(row["status"])


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    return value


class _Unauthorized(Exception):
    """No valid bearer token: answered 401."""


def _actor(request: Request) -> tuple[str, str, str | None]:
    """(user id, role, scope value) from the bearer token."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise _Unauthorized()
    try:
        claims = jwt.decode(token, KEY, algorithms=["HS256"])
        role = claims["role"]
        user_id = claims["sub"]
    except (JWTError, KeyError) as error:
        raise _Unauthorized() from error
    return user_id, role, user_id if role == "rep" else claims.get("region_id")


async def _unauthorized(_: Request, __: Exception) -> Response:
    return _problem(401, "unauthorized")


def _problem(status: int, code: str) -> Response:
    return JSONResponse(
        {"type": f"https://salesdesk.dev/problems/{code}", "status": status, "code": code},
        status_code=status,
        media_type="application/problem+json",
    )


class _Refused(Exception):
    """A move this yardstick does not make, or a row changed meanwhile: rolled back, and
    answered 409."""


def _etag(version: int, *shown: Any) -> str:
    # The app's ETag (app.routers.common.etag): the version, and a digest of what the answer
    # shows beside the row (the names, a dormant verdict).
    digest = hashlib.blake2b(repr(shown).encode(), digest_size=4).hexdigest()
    return f'"{version}-{digest}"'


async def _refused(_: Request, refused: Exception) -> Response:
    # Said in the server's log: a benchmark run that counts errors should show why.
    _log.warning("refused: %s", refused)
    return _problem(409, "conflict")


async def customer(request: Request) -> Response:
    _, role, scope_value = _actor(request)
    try:
        customer_id = uuid.UUID(request.path_params["customer_id"])
    except ValueError:
        return _problem(404, "not_found")
    sql = f"SELECT {_COLUMNS} FROM customers WHERE id = $1 AND deleted_at IS NULL{_SCOPE[role]}"
    args: list[Any] = [customer_id] if role == "director" else [customer_id, scope_value]
    assert _pool is not None
    row = await _pool.fetchrow(sql, *args)
    if row is None:
        return _problem(404, "not_found")
    body = {key: _jsonable(value) for key, value in row.items()}
    body["status"] = _status(row)
    etag = _etag(row["version"], body["owner_name"], body["status"] == "dormant")
    return JSONResponse(body, headers={"ETag": etag})


async def customers(request: Request) -> Response:
    _, role, scope_value = _actor(request)
    try:
        limit = int(request.query_params.get("limit", "50"))
    except ValueError:
        return _problem(422, "validation_failed")
    if not 1 <= limit <= 200:
        return _problem(422, "validation_failed")
    sql = (
        f"SELECT {_COLUMNS} FROM customers WHERE deleted_at IS NULL{_PAGE_SCOPE[role]}"
        f" ORDER BY created_at DESC, id DESC LIMIT {limit + 1}"
    )
    assert _pool is not None
    rows = await _pool.fetch(sql, *([] if role == "director" else [scope_value]))
    items = []
    for row in rows[:limit]:
        item = dict(row)
        item["status"] = _status(row)
        items.append(item)
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        value = ["-created_at", last["created_at"].isoformat(), str(last["id"])]
        raw = json.dumps(value, separators=(",", ":"))
        next_cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    # A page of fifty is where the encoder counts: orjson, as Salesdesk's lists use.
    body = orjson.dumps({"items": items, "next_cursor": next_cursor}, default=str, option=_UTC_Z)
    return Response(body, media_type="application/json")


# FollowUpRead's fields that are the follow-up's columns (the answer and the event's data
# add the customer's and the writer's names).
_FOLLOW_UP_ANSWER = (
    *("id", "version", "created_at", "updated_at", "customer_id", "owner_id", "kind"),
    *("status", "due_at", "occurred_at", "summary", "outcome", "next_follow_up_at"),
    *("opportunity_id", "contract_id", "complaint_id", "satisfaction"),
)
# The row: the answer's fields, then the copies of the customer's owner and region (scope).
_SCOPE_COPIES = ("customer_owner_id", "customer_region_id")
_FOLLOW_UP_COLUMNS = (*_FOLLOW_UP_ANSWER, *_SCOPE_COPIES)
_FOLLOW_UP_SCOPE = _scope("c.", 3)  # after the customer's and the caller's ids
_KINDS = {"call", "email", "visit", "meeting", "return_visit", "other"}
_STATUSES = {"planned", "done"}
# The customer with the department's cadence for its class (the handbook's until the
# director saves the settings) and the caller's name, in one query.
_CUSTOMER_FOR_FOLLOW_UP = (
    "SELECT c.id, c.owner_id, c.region_id, c.version, c.last_follow_up_at, c.follow_up_due_at,"
    " c.name, (SELECT u.full_name FROM users u WHERE u.id = $2) AS caller_name,"
    " coalesce((SELECT (s.data->'follow_up_cadence_days'->>c.classification)::int"
    "  FROM department_settings s LIMIT 1),"
    "  CASE c.classification WHEN 'A' THEN 7 WHEN 'B' THEN 14 ELSE 30 END) AS cadence"
    " FROM customers c WHERE c.id = $1 AND c.deleted_at IS NULL"
)
_AUDIT = (
    "INSERT INTO audit_log"
    " (id, at, actor_id, action, entity_type, entity_id, region_id, before, after)"
)
_FOLLOW_UP_EVENT = (
    "INSERT INTO events (id, type, occurred_at, actor_id, entity_type, entity_id, owner_id,"
    " region_id, data) VALUES ($1, 'follow_up.created', $2, $3, 'follow_up', $4, $5, $6, $7)"
)
_INSERT_FOLLOW_UP = (
    f"INSERT INTO follow_ups ({', '.join(_FOLLOW_UP_COLUMNS)}) VALUES "
    f"({', '.join(f'${i + 8}' for i in range(len(_FOLLOW_UP_COLUMNS)))})"
)
# Parameters: $1..$7 the event, $8..$26 the follow-up, $27..$29 its audit entry (id,
# region, after), then for the customer's change $30 id, $31 version read, $32 last
# contact, $33 next due, $34..$37 its audit entry (id, region, before, after).
_WRITE_FOLLOW_UP = (
    f"WITH f AS ({_INSERT_FOLLOW_UP}),"
    f" a AS ({_AUDIT} VALUES ($27, $2, $3, 'create', 'follow_ups', $8, $28, NULL, $29)),"
    f" e AS ({_FOLLOW_UP_EVENT})"
)
_WRITE_FOLLOW_UP_AND_CUSTOMER = (
    f"{_WRITE_FOLLOW_UP},"
    " u AS (UPDATE customers SET last_follow_up_at = $32, follow_up_due_at = $33,"
    " version = version + 1, updated_at = $2 WHERE id = $30 AND version = $31 RETURNING id),"
    f" b AS ({_AUDIT} VALUES ($34, $2, $3, 'update', 'customers', $30, $35, $36, $37))"
    " SELECT count(*) FROM u"
)
_WRITE_FOLLOW_UP_ONLY = f"{_WRITE_FOLLOW_UP} SELECT 1"


def _new_follow_up(
    body: dict[str, Any], user_id: str, found: asyncpg.Record, now: datetime
) -> dict[str, Any]:
    """The follow-up's row from a valid body; ValueError (a 422) otherwise."""
    kind, status = body.get("kind"), body.get("status", "done")
    if kind not in _KINDS or status not in _STATUSES:
        raise ValueError("kind or status")
    occurred_at = body.get("occurred_at")
    occurred = datetime.fromisoformat(occurred_at) if occurred_at else None
    due_at = datetime.fromisoformat(body["due_at"]) if body.get("due_at") else None
    if status == "done":
        occurred = occurred or now
    elif status == "planned" and due_at is None:
        raise ValueError("due_at")
    return {
        "id": uuid.uuid4(),
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "customer_id": found["id"],
        "owner_id": uuid.UUID(user_id),
        "kind": kind,
        "status": status,
        "due_at": due_at,
        "occurred_at": occurred,
        "summary": body.get("summary"),
        "outcome": body.get("outcome"),
        "next_follow_up_at": None,
        "opportunity_id": None,
        "contract_id": None,
        "complaint_id": None,
        "satisfaction": None,
        "customer_owner_id": found["owner_id"],
        "customer_region_id": found["region_id"],
    }


async def create_follow_up(request: Request) -> Response:
    user_id, role, scope_value = _actor(request)
    try:
        body = json.loads(await request.body())
        customer_id = uuid.UUID(body["customer_id"])
    except (ValueError, KeyError, TypeError):
        return _problem(422, "validation_failed")
    sql = _CUSTOMER_FOR_FOLLOW_UP + _FOLLOW_UP_SCOPE[role]
    args: list[Any] = [customer_id, uuid.UUID(user_id)]
    if role != "director":
        args.append(scope_value)
    assert _pool is not None
    async with _pool.acquire() as connection, connection.transaction():
        found = await connection.fetchrow(sql, *args)
        if found is None:
            return _problem(404, "not_found")
        now = datetime.now(UTC)
        try:
            row = _new_follow_up(body, user_id, found, now)
        except (ValueError, TypeError):
            return _problem(422, "validation_failed")
        columns = {key: _jsonable(row[key]) for key in _FOLLOW_UP_ANSWER}
        copies = {key: _jsonable(row[key]) for key in _SCOPE_COPIES}
        snapshot = json.dumps({**columns, **copies})
        shown = {**columns, "customer_name": found["name"], "owner_name": found["caller_name"]}
        region = found["region_id"]
        values: list[Any] = [uuid.uuid4(), now, uuid.UUID(user_id), row["id"], found["owner_id"]]
        values += [region, json.dumps(shown), *row.values(), uuid.uuid4(), region, snapshot]
        last = found["last_follow_up_at"]
        occurred = row["occurred_at"]
        if occurred is not None and (last is None or occurred > last):
            due = occurred + timedelta(days=found["cadence"])
            before = {"last_follow_up_at": _jsonable(last)}
            before["follow_up_due_at"] = _jsonable(found["follow_up_due_at"])
            after = {"last_follow_up_at": _jsonable(occurred), "follow_up_due_at": _jsonable(due)}
            values += [found["id"], found["version"], occurred, due, uuid.uuid4(), region]
            values += [json.dumps(before), json.dumps(after)]
            if await connection.fetchval(_WRITE_FOLLOW_UP_AND_CUSTOMER, *values) != 1:
                raise _Refused(f"customer {found['id']}: version {found['version']} changed")
        else:
            await connection.execute(_WRITE_FOLLOW_UP_ONLY, *values)
    return JSONResponse(
        shown,
        status_code=201,
        headers={
            "Location": f"/api/v1/follow-ups/{row['id']}",
            "ETag": _etag(1, shown["customer_name"], shown["owner_name"]),
        },
    )


_OPEN_STAGES = ("lead", "contacted", "needs_analysis", "proposal", "negotiation")
_GATED = {"proposal", "negotiation"}  # moves into these check records: not in this yardstick
_PROBABILITY = {"lead": 10, "contacted": 20, "needs_analysis": 40, "proposal": 60}
_PROBABILITY |= {"negotiation": 80, "won": 100, "lost": 0}
_OPPORTUNITY_COLUMNS = (
    *("id", "version", "created_at", "updated_at", "customer_id", "title", "amount"),
    *("expected_close_date", "probability", "source", "needs_summary", "next_follow_up_at"),
    *("stage", "owner_id", "region_id", "lost_reason", "won_at", "closed_at"),
)
# The answer: the columns and the names beside the customer's and the owner's ids.
_OPPORTUNITY_NAMED = (*_OPPORTUNITY_COLUMNS, "customer_name", "owner_name")
_OPPORTUNITY_SCOPE = _scope("o.", 4)
# $1 the opportunity, $2 the stages whose changes the move stamps, $3 the time, $4 the scope.
_OPPORTUNITY_FOR_MOVE = (
    "WITH stamped AS (UPDATE state_changes SET next_state_at = $3"
    " WHERE entity_type = 'opportunity' AND entity_id = $1 AND to_state = ANY($2::text[]))"
    f" SELECT {', '.join(f'o.{c}' for c in _OPPORTUNITY_COLUMNS)},"
    " (SELECT max(at) FROM state_changes WHERE entity_type = 'opportunity'"
    " AND entity_id = $1) AS entered,"
    " (SELECT c.name FROM customers c WHERE c.id = o.customer_id) AS customer_name,"
    " (SELECT u.full_name FROM users u WHERE u.id = o.owner_id) AS owner_name"
    " FROM opportunities o WHERE o.id = $1 AND o.deleted_at IS NULL"
)
# $1 id, $2 version read, $3 the new stage, $4 now, $5 actor, $6 owner, $7 region, $8 the
# stage change's id, $9 from, $10 note, $11 entered, $12 the audit entry's id, $13 before,
# $14 after, $15 the event's id, $16 its data.
_MOVE = (
    "WITH u AS (UPDATE opportunities SET stage = $3, version = version + 1, updated_at = $4"
    " WHERE id = $1 AND version = $2 RETURNING id),"
    " s AS (INSERT INTO state_changes (id, at, entity_type, entity_id, from_state, to_state,"
    " actor_id, note, from_state_at, next_state_at, owner_id, region_id)"
    " VALUES ($8, $4, 'opportunity', $1, $9, $3, $5, $10, $11, NULL, $6, $7)),"
    f" a AS ({_AUDIT} VALUES ($12, $4, $5, 'update', 'opportunities', $1, $7, $13, $14)),"
    " e AS (INSERT INTO events (id, type, occurred_at, actor_id, entity_type, entity_id,"
    " owner_id, region_id, data) VALUES ($15, 'opportunity.stage_changed', $4, $5,"
    " 'opportunity', $1, $6, $7, $16))"
    " SELECT count(*) FROM u"
)


def _move_allowed(current: str, to: str, note: str | None) -> bool:
    if current not in _OPEN_STAGES or to not in _OPEN_STAGES:
        return False
    at, target = _OPEN_STAGES.index(current), _OPEN_STAGES.index(to)
    return (target == at + 1 and to not in _GATED) or (target < at and bool(note))


async def move_opportunity(request: Request) -> Response:
    user_id, role, scope_value = _actor(request)
    try:
        opportunity_id = uuid.UUID(request.path_params["opportunity_id"])
        body = json.loads(await request.body())
        to, note = body["to"], body.get("note")
    except (ValueError, KeyError, TypeError):
        return _problem(422, "validation_failed")
    if to not in _PROBABILITY:
        return _problem(422, "validation_failed")
    moved_on_from = [s for s, n in itertools.pairwise(_OPEN_STAGES) if n == to]
    now = datetime.now(UTC)
    args: list[Any] = [opportunity_id, moved_on_from, now]
    sql = _OPPORTUNITY_FOR_MOVE + _OPPORTUNITY_SCOPE[role]
    if role != "director":
        args.append(uuid.UUID(scope_value) if scope_value else None)
    assert _pool is not None
    async with _pool.acquire() as connection, connection.transaction():
        found = await connection.fetchrow(sql, *args)
        if found is None:
            return _problem(404, "not_found")
        current = found["stage"]
        if not _move_allowed(current, to, note):
            raise _Refused(f"{opportunity_id}: {current} to {to}")
        shown = {key: _jsonable(found[key]) for key in _OPPORTUNITY_NAMED}
        shown |= {"stage": to, "version": found["version"] + 1, "updated_at": _jsonable(now)}
        if found["probability"] is None:
            shown["probability"] = _PROBABILITY[to]
        actor_id, owner, region = uuid.UUID(user_id), found["owner_id"], found["region_id"]
        changed = await connection.fetchval(
            _MOVE,
            *(opportunity_id, found["version"], to, now, actor_id, owner, region),
            *(uuid.uuid4(), current, note, found["entered"] or found["created_at"]),
            *(uuid.uuid4(), json.dumps({"stage": current}), json.dumps({"stage": to})),
            *(uuid.uuid4(), json.dumps({**shown, "from": current, "note": note})),
        )
        if changed != 1:
            raise _Refused(f"{opportunity_id}: version {found['version']} changed meanwhile")
    etag = _etag(shown["version"], shown["customer_name"], shown["owner_name"])
    return JSONResponse(shown, headers={"ETag": etag})


# The summary: the app's own statements for the East manager's summary, as captured by
# ``bench.summary_statements`` (a report's SQL is the least any implementation must send),
# run as they are, at most as many at once as the app's reports lane lets run.
_SUMMARY_FILE = os.environ.get("BENCH_MINIMAL_SUMMARY")
_SUMMARY: list[tuple[str, list[Any]]] = (
    pickle.loads(Path(_SUMMARY_FILE).read_bytes()) if _SUMMARY_FILE else []
)
_REPORTS = asyncio.Semaphore(int(os.environ.get("BENCH_MINIMAL_REPORTS", "4")) or 1_000_000)


def _plain(value: Any) -> Any:
    """What orjson writes for what asyncpg answers inside a row's arrays of records."""
    if isinstance(value, asyncpg.Record):
        return list(value.values())
    return str(value)  # Decimal, asyncpg's UUID


async def summary(request: Request) -> Response:
    _actor(request)
    if not _SUMMARY:
        return _problem(404, "not_found")
    assert _pool is not None
    async with _REPORTS, _pool.acquire() as connection:
        answers = [await connection.fetch(sql, *arguments) for sql, arguments in _SUMMARY]
    rows = [[list(row.values()) for row in rows] for rows in answers]
    return Response(
        orjson.dumps(rows, default=_plain, option=_UTC_Z), media_type="application/json"
    )


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global _pool
    _pool = await asyncpg.create_pool(DSN, min_size=1, max_size=POOL_SIZE)
    try:
        yield
    finally:
        await _pool.close()


app = Starlette(
    routes=[
        Route("/api/v1/customers", customers),
        Route("/api/v1/performance/summary", summary),
        Route("/api/v1/customers/{customer_id}", customer),
        Route("/api/v1/follow-ups", create_follow_up, methods=["POST"]),
        Route(
            "/api/v1/opportunities/{opportunity_id}/transitions",
            move_opportunity,
            methods=["POST"],
        ),
        Route("/healthz", healthz),
    ],
    lifespan=lifespan,
    exception_handlers={_Unauthorized: _unauthorized, _Refused: _refused},
)
