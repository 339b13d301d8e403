"""What every table shares: metadata naming, UUID keys, versions and timestamps."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import JSON, BigInteger, Index, Integer, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import declared_attr
from sqlmodel import Field, SQLModel

from app.models.types import UTCDateTime, utcnow

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-numbers a column declared exactly INTEGER PRIMARY KEY.
SerialType = BigInteger().with_variant(Integer(), "sqlite")


# Where the scope column goes among an index's columns (see scoped_indexes).
SCOPE = "{scope}_id"


def scoped_indexes(
    table: str, name: str, *columns: str, where: str | None = None
) -> tuple[Index, Index]:
    """The same index led by the region and by the owner, ``ix_<table>_region_<name>`` and
    ``ix_<table>_owner_<name>``: lists and reports read one region's or one rep's rows.

    The scope column comes first unless ``SCOPE`` marks its place in ``columns``; ``where``
    makes both indexes partial on PostgreSQL and SQLite alike."""
    if SCOPE not in columns:
        columns = (SCOPE, *columns)
    partial = {}
    if where is not None:
        partial = {"postgresql_where": text(where), "sqlite_where": text(where)}
    region, owner = (
        Index(f"ix_{table}_{scope}_{name}", *(c.format(scope=scope) for c in columns), **partial)
        for scope in ("region", "owner")
    )
    return region, owner


class RecordBase(SQLModel):
    """Columns of every mutable resource.

    ``version`` is SQLAlchemy's version counter: every UPDATE carries
    ``WHERE version = :seen``, so of two concurrent writers only one can win.
    Instances are audited (see ``app.audit``) unless a table sets ``__audited__ = False``.
    """

    __audited__: ClassVar[bool] = True
    # Where the audit log finds a row's region (a manager reads the entries of their own):
    # this column of the row, or, when ``__region_parent__`` names a foreign key, the region
    # of the row it refers to (a contract's, for its installments). No region, no manager.
    __region_column__: ClassVar[str] = "region_id"
    __region_parent__: ClassVar[str | None] = None

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs={"onupdate": utcnow}
    )

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}


def never_null(schema: dict[str, Any]) -> None:
    """Turns a property's schema ``X | None = None`` into "X, or left out": for a member the
    server never writes as null, or refuses as null."""
    options = schema.pop("anyOf", None)
    if options is not None:
        kept = [option for option in options if option.get("type") != "null"]
        if len(kept) == 1:
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept
    if schema.get("default", 0) is None:
        del schema["default"]


def refuse_null(info: ValidationInfo) -> PydanticCustomError:
    return PydanticCustomError(
        "null_not_allowed", "{field} cannot be null.", {"field": info.field_name}
    )


def _document_not_null(schema: dict[str, Any], model: type[Any]) -> None:
    for name in getattr(model, "__not_null__", ()):
        never_null(schema["properties"][name])


class InputSchema(SQLModel):
    """Request bodies: unknown or read-only fields are refused (422), never ignored.

    ``__not_null__`` names the optional fields that may be left out but not sent as null (a
    column that cannot be empty): the body is refused (422) before anything else is looked
    at, and their schema is not nullable."""

    __not_null__: ClassVar[tuple[str, ...]] = ()

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid", str_strip_whitespace=True, json_schema_extra=_document_not_null
    )

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in cls.__not_null__:
            raise refuse_null(info)
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        # PostgreSQL refuses NUL and lone surrogates in text: say so instead of failing later.
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueError("text may not contain NUL characters")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError("text must be valid Unicode") from exc
        return value


class ReadSchema(BaseModel):
    """What the API answers, read from rows. A plain pydantic model, not a SQLModel: these
    are never tables, and SQLModel's own ``__new__`` and ``__setattr__`` made a page of 50
    customers cost about a fifth more to validate and fill in (bench/README.md)."""

    model_config = ConfigDict(from_attributes=True)


class ResourceRead(ReadSchema):
    id: uuid.UUID
    version: int
    created_at: datetime
    updated_at: datetime

    def unversioned(self) -> tuple[Any, ...]:
        """What this answer shows that can change while ``version`` stays (the clock's
        verdicts, sums of other rows, the server's bookkeeping), so that its ETag changes with
        them (``app.routers.common.etag``); empty values mean "as the row says". Here, the
        names shown beside ids (``customer_name``, ``owner_name``): other rows' columns, so a
        renamed customer or owner changes the answer but not this row's version. Schemas
        with more add theirs to these."""
        return tuple(getattr(self, name) for name in _shown_names(type(self)))


# The fields that show another row's name beside its id (app.services.names fills them).
SHOWN_NAMES = ("customer_name", "owner_name")


@cache
def _shown_names(schema: type[ResourceRead]) -> tuple[str, ...]:
    return tuple(name for name in SHOWN_NAMES if name in schema.model_fields)
