"""Regions and users: who works in the department and where."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from pydantic import BaseModel
from sqlalchemy import func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.errors import Conflict, Forbidden, ValidationFailed
from app.models.customers import Customer
from app.models.people import (
    Region,
    RegionCreate,
    RegionRead,
    RegionUpdate,
    Role,
    User,
    UserCreate,
    UserRead,
    UserUpdate,
)
from app.pagination import paginate
from app.permissions import Actor
from app.security import hash_password
from app.services.common import apply_changes, ensure_version, get_visible, matches_text

USER_SORTS = {"created_at": User.created_at, "email": User.email, "full_name": User.full_name}
REGION_SORTS = {"created_at": Region.created_at, "name": Region.name}


def _refuse_nulls(data: BaseModel, fields: set[str]) -> None:
    """422 for an explicit null in a field that cannot be empty: the update schemas allow
    None to mean "not sent", which would otherwise reach the database as a NULL."""
    for field in sorted(fields & data.model_fields_set):
        if getattr(data, field) is None:
            raise ValidationFailed(["body", field], "May not be null.", "null_not_allowed")


# Regions -------------------------------------------------------------------------------------


async def list_regions(
    session: AsyncSession, sort: str, cursor: str | None, limit: int
) -> tuple[Sequence[Region], str | None]:
    return await paginate(
        session,
        select(Region),
        sort=sort,
        sortable=REGION_SORTS,
        id_column=Region.id,
        cursor=cursor,
        limit=limit,
    )


async def get_region(session: AsyncSession, region_id: uuid.UUID) -> Region:
    return await get_visible(session, Region, region_id, true(), name="region")


async def _ensure_region_name_free(
    session: AsyncSession, name: str, except_id: uuid.UUID | None = None
) -> None:
    stmt = select(Region.id).where(func.lower(Region.name) == name.lower())
    if except_id is not None:
        stmt = stmt.where(Region.id != except_id)
    if (await session.scalars(stmt)).first() is not None:
        raise Conflict(f"A region named {name!r} exists already.", reason="duplicate_region")


async def create_region(session: AsyncSession, data: RegionCreate) -> Region:
    await _ensure_region_name_free(session, data.name)
    region = Region(name=data.name)
    session.add(region)
    await session.flush()
    events.record(session, "region.created", region, RegionRead.model_validate(region))
    return region


async def update_region(
    session: AsyncSession, region_id: uuid.UUID, data: RegionUpdate, expected: int | None
) -> Region:
    region = await get_region(session, region_id)
    ensure_version(region, expected)
    _refuse_nulls(data, {"name"})
    if data.name is not None:
        await _ensure_region_name_free(session, data.name, except_id=region.id)
    apply_changes(region, data)
    await session.flush()
    events.record(session, "region.updated", region, RegionRead.model_validate(region))
    return region


async def delete_region(session: AsyncSession, region_id: uuid.UUID, expected: int | None) -> None:
    region = await get_region(session, region_id)
    ensure_version(region, expected)
    in_use = (await session.scalars(select(User.id).where(User.region_id == region.id))).first()
    in_use = (
        in_use
        or (
            await session.scalars(select(Customer.id).where(Customer.region_id == region.id))
        ).first()
    )
    if in_use is not None:
        raise Conflict("The region still has users or customers.", reason="region_in_use")
    events.record(session, "region.deleted", region, {"id": str(region.id), "name": region.name})
    await session.delete(region)
    await session.flush()


# Users ---------------------------------------------------------------------------------------


def _user_scope(actor: Actor):  # type: ignore[no-untyped-def]
    if actor.is_director:
        return true()
    return User.region_id == actor.region_id


async def list_users(
    session: AsyncSession,
    actor: Actor,
    *,
    role: Role | None,
    region_id: uuid.UUID | None,
    is_active: bool | None,
    q: str | None,
    sort: str,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[User], str | None]:
    stmt = select(User).where(_user_scope(actor))
    if role is not None:
        stmt = stmt.where(User.role == role)
    if region_id is not None:
        stmt = stmt.where(User.region_id == region_id)
    if is_active is not None:
        stmt = stmt.where(User.is_active == is_active)
    if q:
        stmt = stmt.where(matches_text(q, User.full_name, User.email))
    return await paginate(
        session, stmt, sort=sort, sortable=USER_SORTS, id_column=User.id, cursor=cursor, limit=limit
    )


async def get_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    visible = true() if user_id == actor.id else _user_scope(actor)
    return await get_visible(session, User, user_id, visible, name="user")


async def _check_placement(session: AsyncSession, role: Role, region_id: uuid.UUID | None) -> None:
    if role is Role.DIRECTOR and region_id is not None:
        raise ValidationFailed(["body", "region_id"], "The director belongs to no region.")
    if role is not Role.DIRECTOR:
        if region_id is None:
            raise ValidationFailed(["body", "region_id"], "Managers and reps need a region.")
        if await session.get(Region, region_id) is None:
            raise ValidationFailed(["body", "region_id"], "No such region.")


async def create_user(session: AsyncSession, actor: Actor, data: UserCreate) -> User:
    region_id = data.region_id
    if actor.is_manager:
        region_id = region_id or actor.region_id
        if data.role is not Role.REP or region_id != actor.region_id:
            raise Forbidden("Regional managers may only create reps in their own region.")
    await _check_placement(session, data.role, region_id)
    email = str(data.email).lower()
    if (await session.scalars(select(User.id).where(func.lower(User.email) == email))).first():
        raise Conflict(f"A user with email {email} exists already.", reason="duplicate_email")
    user = User(
        email=email,
        full_name=data.full_name,
        role=data.role,
        region_id=region_id,
        is_active=data.is_active,
        password_hash=await hash_password(data.password) if data.password else None,
    )
    session.add(user)
    await session.flush()
    events.record(session, "user.created", user, UserRead.model_validate(user))
    return user


async def update_user(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, data: UserUpdate, expected: int | None
) -> User:
    user = await get_user(session, actor, user_id)
    ensure_version(user, expected)
    _refuse_nulls(data, {"full_name", "role", "is_active", "password"})
    sent = data.model_dump(exclude_unset=True)
    is_self = user.id == actor.id
    if is_self and ({"role", "region_id", "is_active"} & sent.keys()):
        raise Forbidden("You may not change your own role, region or active flag.")
    if actor.is_manager and not is_self:
        if user.role != Role.REP:
            raise Forbidden("Regional managers may only change the reps of their region.")
        if {"role", "region_id"} & sent.keys():
            raise Forbidden("Only the director changes roles and regions.")
    role = Role(sent.get("role") or user.role)
    region_id = sent.get("region_id", user.region_id)
    if role is Role.DIRECTOR and "region_id" not in sent:
        region_id = None
    if role != user.role or region_id != user.region_id:
        await _check_placement(session, role, region_id)
        if region_id != user.region_id:
            owns = (
                await session.scalars(
                    select(Customer.id).where(
                        Customer.owner_id == user.id, Customer.deleted_at.is_(None)
                    )
                )
            ).first()
            if owns is not None:
                raise Conflict(
                    "Reassign the user's customers before moving them to another region.",
                    reason="user_owns_customers",
                )
    password = sent.pop("password", None)
    for key, value in sent.items():
        setattr(user, key, value)
    user.region_id = region_id
    if password:
        user.password_hash = await hash_password(password)
    await session.flush()
    events.record(session, "user.updated", user, UserRead.model_validate(user))
    return user
