"""Small helpers every service uses: preconditions, partial updates, scoped loading."""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, and_, bindparam, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import driver_connection
from app.errors import NotFound, ValidationFailed, VersionConflict
from app.models.people import Role
from app.permissions import Actor, scope_filter, scope_params, scope_template
from app.reads import Read
from app.services import names

M = TypeVar("M")
R = TypeVar("R", bound=BaseModel)


def contains_literally(column: Any, text: str) -> ColumnElement[bool]:
    """Whether ``column`` contains ``text`` as written: LIKE's wildcards (% and _) and its
    escape character in ``text`` match only themselves. Every search goes through here.

    The escape character is "/" (``autoescape``: each of them in ``text`` is prefixed with
    it, and the LIKE says ``ESCAPE '/'``), which PostgreSQL and SQLite read alike; a
    backslash, PostgreSQL's default escape, is then an ordinary character on both."""
    return column.contains(text, autoescape=True)


def matches_text(q: str, *columns: Any) -> ColumnElement[bool]:
    """Case-insensitive "contains" over any of ``columns``, literally (``contains_literally``)."""
    needle = q.lower()
    return or_(*(contains_literally(func.lower(column), needle) for column in columns))


def ensure_version(obj: Any, expected: int | None) -> None:
    """412 when the client's If-Match names another version than the stored one."""
    if expected is not None and obj.version != expected:
        raise VersionConflict()


def apply_changes(
    obj: Any, changes: BaseModel, *, exclude: set[str] | None = None
) -> dict[str, Any]:
    """Copy the fields the client sent onto ``obj``; returns what was sent.

    An explicit null for a column that cannot be empty is a 422, not a database error.
    """
    sent = changes.model_dump(exclude_unset=True, exclude=exclude or set())
    columns = obj.__table__.c
    for key, value in sent.items():
        if value is None and key in columns and not columns[key].nullable:
            raise ValidationFailed(["body", key], f"{key} cannot be null.", "null_not_allowed")
    for key, value in sent.items():
        setattr(obj, key, value)
    return sent


async def get_visible(
    session: AsyncSession,
    model: type[M],
    obj_id: Any,
    visible: ColumnElement[bool],
    *,
    name: str,
    for_update: bool = False,
    shown: type[BaseModel] | None = None,
) -> M:
    """The row with ``obj_id`` if ``visible`` admits it; 404 otherwise (outside scope too).
    With ``shown``, the names that schema shows are read in the same statement and kept for
    the answer (``app.services.names``)."""
    stmt: Select[Any] = select(model).where(model.id == obj_id, visible)  # type: ignore[attr-defined]
    if shown is not None:
        stmt = stmt.add_columns(*names.name_columns(model, shown))
    if for_update:
        stmt = stmt.with_for_update()
    return await _one_or_404(session, stmt, {}, name, obj_id)


async def _one_or_404(
    session: AsyncSession, stmt: Select[Any], params: dict[str, Any], name: str, obj_id: Any
) -> Any:
    if len(stmt.selected_columns) == 1:
        obj = (await session.scalars(stmt, params)).first()
    else:
        # The entity, then the names it shows.
        row = (await session.execute(stmt, params)).first()
        obj = None if row is None else row[0]
        if row is not None:
            names.remember_of(session, obj, dict(zip(row._fields[1:], row[1:], strict=True)))
    if obj is None:
        raise NotFound(f"No {name} with id {obj_id}.")
    return obj


def _live(model: Any) -> ColumnElement[bool]:
    deleted_at = getattr(model, "deleted_at", None)
    return true() if deleted_at is None else deleted_at.is_(None)


def in_scope(model: Any, actor: Actor) -> ColumnElement[bool]:
    """Rows of a model scoped by its ``owner_id`` and ``region_id`` that the actor sees: in
    their scope and, for a model that is deleted softly, not deleted."""
    return and_(_live(model), scope_filter(actor, model.owner_id, model.region_id))


def in_scope_template(model: Any, role: Role) -> ColumnElement[bool]:
    """``in_scope`` for any caller of ``role``, with the caller's scope as bound parameters
    (``scope_params``): for statements built once."""
    return and_(_live(model), scope_template(role, model.owner_id, model.region_id))


def _by_id_in_scope(model: Any, role: Role) -> tuple[ColumnElement[bool], ...]:
    # ``in_scope_template`` and the id, the id a bound parameter too.
    return (model.id == bindparam("obj_id"), in_scope_template(model, role))


@cache
def _in_scope_by_id(
    model: Any, role: Role, for_update: bool, shown: type[BaseModel] | None
) -> Select[Any]:
    stmt: Select[Any] = select(model).where(*_by_id_in_scope(model, role))
    if shown is not None:
        stmt = stmt.add_columns(*names.name_columns(model, shown))
    return stmt.with_for_update() if for_update else stmt


async def get_in_scope(
    session: AsyncSession,
    model: type[M],
    obj_id: Any,
    actor: Actor,
    *,
    name: str,
    for_update: bool = False,
    shown: type[BaseModel] | None = None,
) -> M:
    """``get_visible`` with ``in_scope`` as the condition, from a statement built once per
    model and role: building the statement and its cache key on every request was a fifth
    of reading one customer (bench/README.md)."""
    stmt = _in_scope_by_id(model, actor.role, for_update, shown)
    params = {"obj_id": obj_id, **scope_params(actor)}
    return await _one_or_404(session, stmt, params, name, obj_id)  # type: ignore[no-any-return]


def answer_columns(model: Any, schema: type[BaseModel]) -> list[Any]:
    """The columns a read schema answers with, in its fields' order: every field of the
    schema is a column of the table, or a name beside an id (``app.services.names``)."""
    columns = model.__table__.c
    return [
        names.name_column(columns[names.NAMED[field][0]], field)
        if field in names.NAMED
        else columns[field]
        for field in schema.model_fields
    ]


@cache
def _read_in_scope_by_id(model: Any, schema: type[BaseModel], role: Role) -> Read:
    # What ``_in_scope_by_id`` selects, as the answer's columns rather than the ORM entity.
    return Read(select(*answer_columns(model, schema)).where(*_by_id_in_scope(model, role)))


async def read_in_scope(
    session: AsyncSession,
    model: Any,
    schema: type[R],
    obj_id: Any,
    actor: Actor,
    *,
    name: str,
) -> R:
    """``get_in_scope`` answered as ``schema`` straight from the row (``app.reads``), for a
    route that only shows it."""
    read = _read_in_scope_by_id(model, schema, actor.role)
    row = await read.first(
        await driver_connection(session), {"obj_id": obj_id, **scope_params(actor)}
    )
    if row is None:
        raise NotFound(f"No {name} with id {obj_id}.")
    # Validated, not constructed: some columns hold an enum's value as plain text.
    return schema.model_validate(dict(zip(schema.model_fields, row, strict=True)))
