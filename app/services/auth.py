"""Login, token refresh with rotation, logout, and the current user's own account."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.config import Settings
from app.errors import Unauthorized, ValidationFailed
from app.models.people import Locale, MeUpdate, PasswordChange, RefreshToken, Role, User, UserRead
from app.models.types import utcnow
from app.permissions import ROLE_PERMISSIONS, Actor, Permission
from app.ratelimit import LoginThrottle
from app.security import (
    create_access_token,
    hash_password,
    new_refresh_token,
    password_weakness,
    token_digest,
    verify_password,
)
from app.services import department
from app.services.common import apply_changes, ensure_version
from app.services.department import BusinessHours


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


async def _issue(
    session: AsyncSession, settings: Settings, user: User, family_id: uuid.UUID
) -> TokenPair:
    access, lifetime = create_access_token(
        settings.signing_key(),
        user.id,
        user.role,
        user.region_id,
        settings.access_token_minutes,
        login_id=family_id,
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


# The current user ------------------------------------------------------------------------


class MeRead(UserRead):
    """The caller, with what an app needs to draw its screens for them."""

    locale: Locale | None = Field(
        description="The language chosen; null: each request's Accept-Language decides."
    )
    permissions: list[Permission] = Field(
        description="What the caller's role may do, to show or hide an app's actions."
    )
    time_zone: str = Field(
        description="The department's IANA time zone, for local dates and times.",
        examples=["Asia/Shanghai"],
    )
    business_hours: BusinessHours = Field(
        description="When the department works: SLA and review due times count these hours."
    )
    currency: str = Field(
        description="The ISO 4217 code of every amount of money.", examples=["CNY"]
    )

    def unversioned(self) -> tuple[Any, ...]:
        # The department's settings and the deployment's, not the user's row.
        return (self.permissions, self.business_hours, self.currency)


# Sorted once per role: the permissions never change while the process runs.
_PERMISSIONS = {role: sorted(granted) for role, granted in ROLE_PERMISSIONS.items()}


async def me(session: AsyncSession, actor: Actor, currency: str) -> MeRead:
    """The caller's own record, permissions and the department's context."""
    user = await session.get_one(User, actor.id)
    return await _me(session, user, currency)


async def _me(session: AsyncSession, user: User, currency: str) -> MeRead:
    hours = (await department.load(session)).business_hours
    return MeRead(
        **UserRead.model_validate(user).model_dump(),
        locale=Locale(user.locale) if user.locale else None,
        permissions=_PERMISSIONS[Role(user.role)],
        time_zone=hours.time_zone,
        business_hours=hours,
        currency=currency,
    )


async def update_me(
    session: AsyncSession, actor: Actor, changes: MeUpdate, expected: int | None, currency: str
) -> MeRead:
    """Change the caller's own name, phone or language (412 when ``expected`` is stale)."""
    user = await session.get_one(User, actor.id)
    ensure_version(user, expected)
    if apply_changes(user, changes):
        await session.flush()
        events.record(session, "user.updated", user, UserRead.model_validate(user))
    return await _me(session, user, currency)


async def change_password(
    session: AsyncSession,
    actor: Actor,
    change: PasswordChange,
    *,
    login_id: uuid.UUID | None,
    throttle: LoginThrottle,
    client_ip: str,
) -> None:
    """Replace the caller's password, given the current one, and end the user's other
    logins: every refresh token outside ``login_id`` (the login the request's access token
    belongs to; None ends them all) is revoked.

    The current password is checked under the login throttle, as a login is: a stolen
    access token must not become a way to guess the password. A wrong one is a 422 on
    ``current_password`` (not a 401, which clients take for an expired token); a new one
    that is too easy to guess, or is the current one, a 422 on ``new_password``."""
    user = await session.get_one(User, actor.id)
    attempt = throttle.begin(user.email, client_ip)
    try:
        valid = await verify_password(user.password_hash, change.current_password)
    except BaseException:
        attempt.abandoned()
        raise
    if not valid:
        raise ValidationFailed(
            ["body", "current_password"], "The current password is wrong.", "wrong_password"
        )
    attempt.succeeded()
    if change.new_password == change.current_password:
        raise ValidationFailed(
            ["body", "new_password"], "The new password is the current one.", "password_unchanged"
        )
    weakness = await password_weakness(change.new_password, [user.email, user.full_name])
    if weakness is not None:
        raise ValidationFailed(["body", "new_password"], weakness, "password_too_weak")
    # Through the ORM, so the audit log records that the credentials changed (never how).
    user.password_hash = await hash_password(change.new_password)
    await session.flush()
    others = update(RefreshToken).where(
        RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None)
    )
    if login_id is not None:
        others = others.where(RefreshToken.family_id != login_id)
    await session.execute(others.values(revoked_at=utcnow()))
    events.record(session, "user.updated", user, UserRead.model_validate(user))
