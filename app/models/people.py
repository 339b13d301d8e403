"""Regions, users and their refresh tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import pydantic
from pydantic import EmailStr, StrictBool
from sqlalchemy import String
from sqlmodel import Field, SQLModel

from app.models.base import InputSchema, RecordBase, ResourceRead
from app.models.types import UTCDateTime, utcnow


class Role(StrEnum):
    DIRECTOR = "director"
    REGIONAL_MANAGER = "regional_manager"
    REP = "rep"


class Locale(StrEnum):
    """The languages the API answers in."""

    EN = "en"
    ZH_CN = "zh-CN"


class Region(RecordBase, table=True):
    __tablename__ = "regions"
    __region_column__ = "id"

    name: str = Field(max_length=100, unique=True)


class RegionCreate(InputSchema):
    name: str = pydantic.Field(min_length=1, max_length=100, examples=["East"])


class RegionUpdate(InputSchema):
    __not_null__ = ("name",)

    name: str | None = pydantic.Field(default=None, min_length=1, max_length=100)


class RegionRead(ResourceRead):
    name: str


class User(RecordBase, table=True):
    __tablename__ = "users"

    email: str = Field(max_length=254, unique=True)
    full_name: str = Field(max_length=200)
    role: str = Field(sa_type=String(32))
    region_id: uuid.UUID | None = Field(default=None, foreign_key="regions.id", index=True)
    is_active: bool = Field(default=True)
    password_hash: str | None = Field(default=None, max_length=255)
    phone: str | None = Field(default=None, max_length=50)
    # None: the user chose no language, and each request's Accept-Language decides.
    locale: str | None = Field(default=None, sa_type=String(16))


class UserCreate(InputSchema):
    email: EmailStr = pydantic.Field(max_length=254, examples=["new.rep@example.com"])
    full_name: str = pydantic.Field(min_length=1, max_length=200)
    role: Role
    region_id: uuid.UUID | None = None
    is_active: StrictBool = True
    password: str | None = pydantic.Field(default=None, min_length=8, max_length=128)


class UserUpdate(InputSchema):
    __not_null__ = ("full_name", "role", "is_active", "password")

    full_name: str | None = pydantic.Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    region_id: uuid.UUID | None = None
    is_active: StrictBool | None = None
    password: str | None = pydantic.Field(default=None, min_length=8, max_length=128)


class UserRead(ResourceRead):
    email: str
    full_name: str
    role: Role
    region_id: uuid.UUID | None
    is_active: bool
    phone: str | None


class MeUpdate(InputSchema):
    """What a user changes about themselves; role, region, email and the active flag are
    their managers' to change (422 here, as any read-only field)."""

    full_name: str | None = pydantic.Field(default=None, min_length=1, max_length=200)
    phone: str | None = pydantic.Field(
        default=None, min_length=1, max_length=50, description="null removes it."
    )
    locale: Locale | None = pydantic.Field(
        default=None,
        description="The language answers are given in; null follows each request's "
        "Accept-Language.",
    )


class PasswordChange(InputSchema):
    model_config = pydantic.ConfigDict(extra="forbid", str_strip_whitespace=False)

    current_password: str = pydantic.Field(min_length=1, max_length=128)
    new_password: str = pydantic.Field(
        min_length=8,
        max_length=128,
        description="At least 8 characters and hard to guess: common passwords, keyboard "
        "patterns and ones built from your name or email are refused (422).",
    )


class RefreshToken(SQLModel, table=True):
    """A single-use refresh token, stored as a digest. Tokens from one login form a family:
    presenting an already-used token revokes the whole family (it was stolen or replayed)."""

    __tablename__ = "refresh_tokens"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    family_id: uuid.UUID = Field(index=True)
    token_digest: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
