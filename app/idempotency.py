"""``Idempotency-Key`` on POST: a retry with the same key and body replays the first answer.

The key is claimed (a pending row) before the request runs, so two concurrent requests with
one key cannot both execute: the second is told the first is still in progress (409). Only
successful answers are kept; a failed request changed nothing and may simply be retried.
Keys belong to the authenticated user and expire after ``idempotency_ttl_hours``.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import get_settings
from app.db import Database
from app.errors import ProblemCode, problem_response
from app.models.platform import IdempotencyRecord
from app.models.types import utcnow
from app.security import bearer_token, decode_access_token

HEADER = "idempotency-key"
# A claim whose request has not answered in this long was abandoned: the process died, or
# the database went away before the claim could be released. Requests answer in well under
# this, and a retry after it runs again rather than waiting on a claim nobody will settle.
_ABANDONED_AFTER = timedelta(seconds=30)
_MAX_BODY = 1_000_000


def _principal(headers: Headers) -> str | None:
    token = bearer_token(headers.get("authorization"))
    if token is None:
        return None
    claims = decode_access_token(get_settings().signing_key(), token)
    return str(claims.user_id) if claims else None


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get(HEADER)
        principal = _principal(headers) if key is not None else None
        if key is None or principal is None:
            # Without a key there is nothing to do; without a valid token the app answers 401.
            await self.app(scope, receive, send)
            return
        if not 1 <= len(key) <= 255:
            await problem_response(
                400, ProblemCode.BAD_REQUEST, "Idempotency-Key must be 1 to 255 characters."
            )(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            await problem_response(
                413, ProblemCode.PAYLOAD_TOO_LARGE, "The request body is too large."
            )(scope, receive, send)
            return
        digest = hashlib.sha256(
            b"\n".join(
                [
                    scope["method"].encode(),
                    scope["path"].encode(),
                    scope.get("query_string", b""),
                    body,
                ]
            )
        ).hexdigest()
        database: Database = scope["app"].state.database
        outcome = await _claim(database, principal, key, digest)
        if isinstance(outcome, IdempotencyRecord):
            await _replay(outcome, send)
            return
        if outcome == "reused":
            await problem_response(
                422,
                ProblemCode.IDEMPOTENCY_KEY_REUSED,
                "This Idempotency-Key was used with a different request; use a new key.",
            )(scope, receive, send)
            return
        if outcome == "in_progress":
            await problem_response(
                409,
                ProblemCode.CONFLICT,
                "A request with this Idempotency-Key is still in progress.",
                reason="idempotency_key_in_progress",
            )(scope, receive, send)
            return
        await self._run_and_keep(scope, body, receive, send, database, principal, key)

    async def _run_and_keep(
        self,
        scope: Scope,
        body: bytes,
        receive: Receive,
        send: Send,
        database: Database,
        principal: str,
        key: str,
    ) -> None:
        status = 0
        response_headers: list[list[str]] = []
        chunks: list[bytes] = []
        body_sent = False

        async def replay_receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers.extend(
                    [k.decode("latin-1"), v.decode("latin-1")]
                    for k, v in message.get("headers", [])
                )
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_receive, capture)
        finally:
            await _settle(database, principal, key, status, response_headers, b"".join(chunks))


async def _read_body(receive: Receive) -> bytes | None:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _claim(
    database: Database, principal: str, key: str, digest: str
) -> IdempotencyRecord | str:
    """Claim the key, or say why not: a finished record to replay, 'reused' or 'in_progress'."""
    ttl = timedelta(hours=get_settings().idempotency_ttl_hours)
    now = utcnow()
    try:
        async with database.session() as session, session.begin():
            existing = (
                await session.scalars(
                    select(IdempotencyRecord).where(
                        IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
                    )
                )
            ).first()
            if existing is not None:
                expired = existing.created_at < now - ttl
                abandoned = (
                    existing.status_code is None and existing.created_at < now - _ABANDONED_AFTER
                )
                if not (expired or abandoned):
                    if existing.request_digest != digest:
                        return "reused"
                    return existing if existing.status_code is not None else "in_progress"
                await session.delete(existing)
                await session.flush()
            session.add(IdempotencyRecord(principal=principal, key=key, request_digest=digest))
    except IntegrityError:
        return "in_progress"
    return "claimed"


async def _settle(
    database: Database, principal: str, key: str, status: int, headers: list[list[str]], body: bytes
) -> None:
    async with database.session() as session, session.begin():
        record = (
            await session.scalars(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
                )
            )
        ).first()
        if record is None:
            return
        if 200 <= status < 300:
            record.status_code, record.response_headers, record.response_body = (
                status,
                headers,
                body,
            )
        else:
            await session.delete(record)


async def _replay(record: IdempotencyRecord, send: Send) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in record.response_headers or []]
    headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": record.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": record.response_body or b""})


async def purge_expired(database: Database, batch: int = 5000) -> int:
    """Drop keys past their lifetime, ``batch`` at a time, each batch its own transaction;
    run now and then by the background worker.

    A day's keys of a busy department in one statement could run past the connections'
    ``statement_timeout`` and then never be purged; short batches also hold their row locks
    briefly and leave each one's work to vacuum in turn."""
    cutoff = utcnow() - timedelta(hours=get_settings().idempotency_ttl_hours)
    expired = (
        select(IdempotencyRecord.id)
        .where(IdempotencyRecord.created_at < cutoff)
        .limit(batch)
        .scalar_subquery()
    )
    purged = 0
    while True:
        async with database.session() as session, session.begin():
            result = await session.execute(
                delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(expired))
            )
        count = int(result.rowcount or 0)  # type: ignore[attr-defined]
        purged += count
        if count < batch:
            return purged
