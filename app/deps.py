"""FastAPI dependencies shared by every router: the session, the caller, preconditions."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import get_settings
from app.db import get_session
from app.errors import Forbidden, Unauthorized
from app.models.people import Role, User
from app.permissions import Actor, Permission
from app.security import decode_access_token

SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An access token from /api/v1/auth/token.")


async def current_actor(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The caller, from a valid access token of an active user; 401 otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    claims = decode_access_token(get_settings().signing_key(), credentials.credentials)
    if claims is None:
        raise Unauthorized("The access token is invalid or expired.")
    # Role and region are read fresh so a demotion or deactivation takes effect at once.
    user = await session.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("The account is unknown or inactive.")
    session.info["actor_id"] = user.id
    return Actor(id=user.id, role=Role(user.role), region_id=user.region_id, email=user.email)


ActorDep = Annotated[Actor, Depends(current_actor)]


def require(permission: Permission) -> Callable[..., Coroutine[Any, Any, Actor]]:
    """A dependency answering 403 unless the caller's role has ``permission``."""

    async def _check(actor: ActorDep) -> Actor:
        if not actor.can(permission):
            raise Forbidden(f"Your role may not do this ({permission.value}).")
        return actor

    return _check


# "3", W/"3" (weak and strong compare alike: the version is the whole state) or a bare 3.
NO_VERSION = -1
"""What an If-Match that names no version of ours expects: nothing matches it."""

_ETAG = re.compile(r'\s*(?:W/)?(?:"([0-9]{1,18})"|([0-9]{1,18}))\s*')


def if_match(
    value: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description='The ETag of the version you read (e.g. "3"); stale → 412.',
        ),
    ] = None,
) -> int | None:
    """The version the client expects, or None when it sent no precondition (or ``*``)."""
    if value is None or value.strip() == "*":
        return None
    # Anything else (a list of tags, a tag of another server) cannot match any version, so
    # the service answers 412 — after the body was validated, so a bad body is still a 422.
    match = _ETAG.fullmatch(value)
    if match is None:
        return NO_VERSION
    return int(match.group(1) or match.group(2))


IfMatchDep = Annotated[int | None, Depends(if_match)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
