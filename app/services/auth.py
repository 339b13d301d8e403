"""Login, token refresh with rotation, logout."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import Unauthorized
from app.models.people import RefreshToken, User
from app.models.types import utcnow
from app.ratelimit import LoginThrottle
from app.security import (
    create_access_token,
    new_refresh_token,
    token_digest,
    verify_password,
)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


async def _issue(
    session: AsyncSession, settings: Settings, user: User, family_id: uuid.UUID
) -> TokenPair:
    access, lifetime = create_access_token(
        settings.signing_key(), user.id, user.role, user.region_id, settings.access_token_minutes
    )
    refresh = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_digest=token_digest(refresh),
            expires_at=utcnow() + timedelta(days=settings.refresh_token_days),
        )
    )
    return TokenPair(access, refresh, lifetime)


async def login(
    session: AsyncSession,
    settings: Settings,
    email: str,
    password: str,
    *,
    throttle: LoginThrottle,
    client_ip: str,
) -> TokenPair:
    """A new login's token pair. Raises ``RateLimited`` while the email or the client IP has
    too many recent failures (before the password is even checked) and ``Unauthorized`` for
    wrong credentials, which counts as one more failure for both."""
    attempt = throttle.begin(email, client_ip)
    try:
        user = (
            await session.scalars(
                select(User).where(func.lower(User.email) == email.strip().lower())
            )
        ).first()
        valid = await verify_password(user.password_hash if user else None, password)
    except BaseException:
        attempt.abandoned()
        raise
    if user is None or not valid or not user.is_active:
        raise Unauthorized("Wrong email or password, or the account is inactive.")
    attempt.succeeded()
    return await _issue(session, settings, user, uuid.uuid4())


class RefreshTokenReused(Unauthorized):
    """A used refresh token came back. Its login's tokens have been revoked in the session;
    the caller must commit that revocation before answering, or the 401 rolls it back."""

    def __init__(self) -> None:
        super().__init__("The refresh token was already used; its login has been revoked.")


async def refresh(session: AsyncSession, settings: Settings, token: str) -> TokenPair:
    """Trade a refresh token for a new pair. Each token works once; a replayed token revokes
    every token of its login (someone else has it) and raises ``RefreshTokenReused``."""
    now = utcnow()
    stored = (
        await session.scalars(
            select(RefreshToken).where(RefreshToken.token_digest == token_digest(token))
        )
    ).first()
    if stored is None or stored.revoked_at is not None or stored.expires_at <= now:
        raise Unauthorized("The refresh token is invalid, expired or revoked.")
    # Read before the UPDATE below, which also refreshes the loaded row's used_at.
    replayed = stored.used_at is not None
    # Conditional update: of two concurrent refreshes with one token, only one wins; the
    # loser is a second use of the token like any replay, whichever order they ran in.
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == stored.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    if replayed or result.rowcount != 1:  # type: ignore[attr-defined]
        await _revoke_family(session, stored.family_id)
        raise RefreshTokenReused()
    user = await session.get(User, stored.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("The account is inactive.")
    return await _issue(session, settings, user, stored.family_id)


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def logout(session: AsyncSession, user_id: uuid.UUID, token: str | None) -> None:
    """Revoke the given refresh token's login, or every login of the user when none is given."""
    stmt = update(RefreshToken).where(
        RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None)
    )
    if token is not None:
        stored = (
            await session.scalars(
                select(RefreshToken).where(
                    RefreshToken.token_digest == token_digest(token),
                    RefreshToken.user_id == user_id,
                )
            )
        ).first()
        if stored is None:
            return
        stmt = stmt.where(RefreshToken.family_id == stored.family_id)
    await session.execute(stmt.values(revoked_at=utcnow()))
