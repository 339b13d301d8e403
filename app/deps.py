"""FastAPI dependencies shared by every router: the session, the caller, preconditions."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.callers import CallerCache
from app.config import Settings, get_settings
from app.db import get_session
from app.errors import BadRequest, Forbidden, Unauthorized
from app.models.people import Role, User
from app.models.performance import SettingsRecord
from app.permissions import Actor, Permission
from app.security import AccessClaims, bearer_token, decode_access_token
from app.services import department, names
from app.services.department import SETTINGS_ID

SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def app_settings(request: Request) -> Settings:
    """The settings the app was created with (``create_app(settings)``)."""
    settings: Settings = request.app.state.settings
    return settings


AppSettingsDep = Annotated[Settings, Depends(app_settings)]


def access_claims(token: str) -> AccessClaims | None:
    """``decode_access_token`` with the signing key in force (which remembers valid tokens:
    the rate limiter has usually verified this one already)."""
    return decode_access_token(get_settings().signing_key(), token)


# The department settings row rides along with the caller's row: most requests read it
# (customer status, cadences, limits), and department.load() then answers the parsed settings
# without asking the database a second time.
# Built once, the caller's id a bound parameter: building ``User.id == <id>`` and the WHERE
# clause anew for every request cost about a fifth as much as executing the query.
_ACTOR_QUERY = (
    select(User, SettingsRecord)
    .outerjoin(SettingsRecord, SettingsRecord.id == SETTINGS_ID)
    .where(User.id == bindparam("actor_id"))
)


# Where the OAuth2 password flow logs in: Swagger UI's "Authorize" dialog posts the e-mail
# and password there, and generated clients read it from the security scheme.
TOKEN_URL = "/api/v1/auth/token"


class Caller(OAuth2PasswordBearer):
    """The caller, from a valid access token of an active user (401 otherwise), and with
    ``permission`` when one is named (403 otherwise).

    One dependency where there were three (the security scheme, the caller, the permission
    check) each with its own parameters for FastAPI to solve on every request. For OpenAPI
    it is the OAuth2 password flow's security scheme: the token is still read from the
    ``Authorization: Bearer`` header, and a missing or bad one is still a 401 problem.
    """

    def __init__(self, permission: Permission | None = None) -> None:
        super().__init__(
            tokenUrl=TOKEN_URL,
            scheme_name="OAuth2PasswordBearer",
            description="Log in with your e-mail as the username and your password; send "
            "the access token as `Authorization: Bearer <token>`.",
            auto_error=False,
        )
        self.permission = permission

    async def __call__(self, request: Request) -> Actor:  # type: ignore[override]
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise Unauthorized()
        claims = access_claims(token)
        if claims is None:
            raise Unauthorized("The access token is invalid or expired.")
        session = await get_session(request)
        callers: CallerCache = request.app.state.database.callers
        known = callers.get(claims.user_id)
        if known is None:
            known = await _read_caller(session, callers, claims.user_id)
        actor, settings = known
        department.use(session, settings)
        session.info["actor_id"] = actor.id
        # What the caller writes and owns shows the caller's name: known without a query.
        names.remember_user(session, actor.id, actor.full_name)
        if self.permission is not None and not actor.can(self.permission):
            raise Forbidden(f"Your role may not do this ({self.permission.value}).")
        return actor


async def _read_caller(
    session: AsyncSession, callers: CallerCache, user_id: uuid.UUID
) -> tuple[Actor, department.DepartmentSettings]:
    # Role, region and the active flag are read fresh (or remembered only until they change:
    # app.callers), so a demotion or deactivation takes effect at once.
    generation = callers.generation
    row = (await session.execute(_ACTOR_QUERY, {"actor_id": user_id})).first()
    user = row[0] if row is not None else None
    if user is None or not user.is_active:
        raise Unauthorized("The account is unknown or inactive.")
    actor = Actor(
        id=user.id,
        role=Role(user.role),
        region_id=user.region_id,
        email=user.email,
        full_name=user.full_name,
    )
    settings = department.parse(row[1] if row is not None else None)
    callers.remember(generation, actor, settings)
    return actor, settings


ActorDep = Annotated[Actor, Depends(Caller())]


def caller_login(request: Request) -> uuid.UUID | None:
    """The login (refresh-token family) of the request's access token, for a route that
    also depends on the caller, so the token is known valid; None for a token without one.
    Not part of the caller itself: only self-service asks, and the cached claims cost
    nothing to look up again."""
    token = bearer_token(request.headers.get("authorization"))
    claims = access_claims(token) if token else None
    return claims.login_id if claims else None


def require(permission: Permission) -> Caller:
    """A dependency answering 401 without a valid caller, 403 unless the caller's role has
    ``permission``."""
    return Caller(permission)


# "3", W/"3" (weak and strong compare alike) or a bare 3; or "3-5f2c9a1e", the tag of an
# answer that also shows what changes without the version (app.routers.common.etag): a write
# is stale when the row has moved on, not when the clock has.
NO_VERSION = -1
"""What an If-Match that names no version of ours expects: nothing matches it."""

_OUR_TAG = re.compile(r'\s*(?:(?:W/)?"([0-9]{1,18})(?:-[0-9a-f]{1,64})?"|([0-9]{1,18}))\s*')
# One element of an If-Match list (RFC 9110 8.8.3: an entity-tag; a bare version too), then
# the comma or the end; an empty element (", ,") is allowed, as the list syntax says.
_ELEMENT = re.compile(r'\s*(?:(?:W/)?"([\x21\x23-\x7e\x80-\xff]*)"|([0-9]{1,18}))?\s*(?:,|$)')
_OUR_OPAQUE = re.compile(r"([0-9]{1,18})(?:-[0-9a-f]{1,64})?")


# async although it awaits nothing: FastAPI runs a plain ``def`` dependency in a worker
# thread, a hand-off that cost more than everything the function does.
async def if_match(
    value: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description='The ETag of the version you read (e.g. "3"), `*`, or a list of ETags; '
            "stale → 412, not an ETag at all → 400.",
        ),
    ] = None,
) -> int | None:
    """The version the client expects, or None when it sent no precondition (or ``*``).

    400 when the value is not an If-Match at all (``abc``, an unclosed quote): that is a
    malformed request, not a precondition that failed."""
    if value is None:
        return None
    match = _OUR_TAG.fullmatch(value)
    if match is not None:
        return int(match.group(1) or match.group(2))
    if value.strip() == "*":
        return None
    return _listed_version(value)


def _listed_version(value: str) -> int:
    """The version a list of entity tags names; NO_VERSION when it names none of ours (a
    tag of another server), which the service answers 412 after validating the body. A
    write compares one version (``ensure_version``), so a list naming several versions is
    answered 412 too: a client sends back the one ETag it read."""
    versions: set[int] = set()
    position, tags = 0, 0
    while position < len(value):
        element = _ELEMENT.match(value, position)
        if element is None or element.end() == position:
            raise BadRequest('If-Match is not an entity tag ("3"), a list of them, or *.')
        position = element.end()
        opaque, bare = element.group(1), element.group(2)
        if opaque is None and bare is None:
            continue
        tags += 1
        ours = _OUR_OPAQUE.fullmatch(opaque) if opaque is not None else None
        if ours is not None or bare is not None:
            versions.add(int(ours.group(1) if ours is not None else bare))
    if tags == 0:
        raise BadRequest('If-Match is not an entity tag ("3"), a list of them, or *.')
    return versions.pop() if len(versions) == 1 else NO_VERSION


IfMatchDep = Annotated[int | None, Depends(if_match)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
