"""Login, refresh, logout and the current user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request, Response
from pydantic import BaseModel, Field

from app.config import get_settings
from app.deps import (
    ActorDep,
    AppSettingsDep,
    IfMatchDep,
    SessionDep,
    caller_login,
    client_ip,
)
from app.errors import error_responses
from app.models.people import MeUpdate, PasswordChange
from app.ratelimit import RateLimits
from app.routers.common import api_router, ok_with_etag, with_etag
from app.services import auth as auth_service
from app.services.auth import MeRead

router = api_router("/auth", "auth")


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")


class RefreshRequest(BaseModel):
    model_config = {"extra": "forbid"}
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(BaseModel):
    model_config = {"extra": "forbid"}
    refresh_token: str | None = Field(
        default=None,
        max_length=512,
        description="Revoke this login only; without it, every login of yours is revoked.",
    )


def _tokens(pair: auth_service.TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


def _no_store(response: Response) -> None:
    # Responses carrying tokens must not be cached by browsers or proxies (RFC 6749 §5.1).
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


@router.post(
    "/token",
    summary="Log in with email and password (OAuth2 password form)",
    responses=error_responses(401),
)
async def auth_token(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=254, description="Your email.")],
    password: Annotated[str, Form(max_length=128)],
    response: Response,
) -> TokenResponse:
    """Too many failed logins for one email, or from one address, answer 429 with
    `Retry-After` until they age out, whatever the password."""
    _no_store(response)
    limits: RateLimits = request.app.state.rate_limits
    pair = await auth_service.login(
        session,
        get_settings(),
        username,
        password,
        throttle=limits.logins,
        client_ip=client_ip(request),
    )
    return _tokens(pair)


@router.post(
    "/refresh",
    summary="Trade a refresh token for a new token pair",
    responses=error_responses(401),
)
async def auth_refresh(
    session: SessionDep, body: RefreshRequest, response: Response
) -> TokenResponse:
    _no_store(response)
    try:
        pair = await auth_service.refresh(session, get_settings(), body.refresh_token)
    except auth_service.RefreshTokenReused:
        # The 401 would roll the request back, and the revocation of the replayed token's
        # login with it: keep the revocation, then answer the error.
        await session.commit()
        raise
    return _tokens(pair)


@router.post("/logout", status_code=204, summary="Revoke refresh tokens", response_class=Response)
async def auth_logout(
    session: SessionDep, actor: ActorDep, body: LogoutRequest | None = None
) -> None:
    await auth_service.logout(session, actor.id, body.refresh_token if body else None)


@router.get("/me", summary="The current user", responses=ok_with_etag())
async def auth_me(
    session: SessionDep, actor: ActorDep, settings: AppSettingsDep, response: Response
) -> MeRead:
    """You, your role's permissions, and the department's time zone, business hours and
    currency."""
    me = await auth_service.me(session, actor, settings.currency)
    with_etag(response, me.version, me.unversioned())
    return me


@router.patch(
    "/me",
    summary="Change your name, phone or language",
    responses={**ok_with_etag(), **error_responses(412)},
)
async def auth_me_update(
    session: SessionDep,
    actor: ActorDep,
    settings: AppSettingsDep,
    body: MeUpdate,
    expected: IfMatchDep,
    response: Response,
) -> MeRead:
    """Only `full_name`, `phone` and `locale`; any other field is a 422 (your role, region
    and email are your managers' to change)."""
    me = await auth_service.update_me(session, actor, body, expected, settings.currency)
    with_etag(response, me.version, me.unversioned())
    return me


@router.post(
    "/me/password",
    status_code=204,
    response_class=Response,
    summary="Change your password",
)
async def auth_me_password(
    request: Request, session: SessionDep, actor: ActorDep, body: PasswordChange
) -> None:
    """Needs your current password: a wrong one is a 422 `validation_error` whose `errors`
    name `current_password` (type `wrong_password`); failed tries count towards the login
    throttle (429 with `Retry-After`). A new password that is too easy to guess is a 422
    naming `new_password` (type `password_too_weak`, with advice). On success every other
    login of yours ends (its refresh token is revoked); the one you call with goes on."""
    limits: RateLimits = request.app.state.rate_limits
    await auth_service.change_password(
        session,
        actor,
        body,
        login_id=caller_login(request),
        throttle=limits.logins,
        client_ip=client_ip(request),
    )
