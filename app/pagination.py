"""Keyset pagination with opaque cursors, and the list envelope every list answers with.

A page is ordered by its sort column, ties broken by id in the same direction. A column that
may be empty (a follow-up's ``due_at``) puts its empty rows last in either direction, on
PostgreSQL and SQLite alike (``NULLS LAST``; the two disagree by default), so a screen
sorted by a date shows the rows that have one first; its cursor then holds null as the
value, and the page after it goes on among the empty rows by id.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, or_, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.types import TypeDecorator

from app.errors import BadRequest

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Opaque; pass as `cursor` for the next page. Null on the last page."
    )


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    return value


_BIGINT = 2**63


def _python_type(column: InstrumentedAttribute[Any]) -> type:
    # A TypeDecorator (UTCDateTime, MoneyType) reports ``object``; its impl knows better.
    sql_type = column.type
    if isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance
    try:
        return sql_type.python_type
    except NotImplementedError:
        return object


def _decode_value(column: InstrumentedAttribute[Any], raw: Any) -> Any:
    """The cursor's value as the column's type. Anything the database could not compare
    (a time without a zone, a number out of range) is a ValueError here, hence a 400, rather
    than a driver error later."""
    if raw is None and _nullable(column):
        return None
    python_type = _python_type(column)
    if python_type is date:
        return date.fromisoformat(raw)
    if python_type is datetime:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            raise ValueError("cursor time without a zone")
        return moment
    if python_type is uuid.UUID:
        return uuid.UUID(raw)
    if python_type is Decimal:
        number = Decimal(raw)
        if not number.is_finite():
            raise ValueError("cursor number is not finite")
        return number
    if python_type is int:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError("bad cursor value")
        integer = int(raw)
        if not -_BIGINT <= integer < _BIGINT:
            raise ValueError("cursor number out of range")
        return integer
    if not isinstance(raw, str):
        raise ValueError("bad cursor value")
    return raw


def _encode_cursor(sort: str, value: Any, row_id: Any) -> str:
    raw = json.dumps([sort, _encode_value(value), str(row_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(
    cursor: str,
    sort: str,
    column: InstrumentedAttribute[Any],
    id_column: InstrumentedAttribute[Any],
) -> tuple[Any, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        cursor_sort, value, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if cursor_sort != sort:
            raise BadRequest("The cursor belongs to a different sort order; start again.")
        return _decode_value(column, value), _decode_value(id_column, row_id)
    except BadRequest:
        raise
    except (ValueError, TypeError, ArithmeticError, binascii.Error, AttributeError) as exc:
        raise BadRequest(
            "The cursor is malformed; use the next_cursor of a previous page."
        ) from exc


def _nullable(column: InstrumentedAttribute[Any]) -> bool:
    return bool(column.nullable)


def _after(
    column: InstrumentedAttribute[Any],
    id_column: InstrumentedAttribute[Any],
    descending: bool,
    bound: tuple[Any, Any],
    after_empty: bool = False,
) -> ColumnElement[bool]:
    """The rows after ``bound`` (a sort value and an id) in the page order; ``after_empty``:
    the bound's value is null, so only empty rows with a later id follow."""
    if after_empty:
        later_id = id_column < bound[1] if descending else id_column > bound[1]
        return and_(column.is_(None), later_id)
    key = tuple_(column, id_column)
    later = key < tuple_(*bound) if descending else key > tuple_(*bound)
    # A comparison with null is never true: the empty rows, which come last, are added.
    return or_(later, column.is_(None)) if _nullable(column) else later


def _ordered(
    stmt: Select[Any],
    column: InstrumentedAttribute[Any],
    id_column: InstrumentedAttribute[Any],
    descending: bool,
) -> Select[Any]:
    value = column.desc() if descending else column.asc()
    if _nullable(column):
        # Only here: on a column that is never null the clause would keep PostgreSQL from
        # reading a descending page backwards along an ascending index.
        value = value.nulls_last()
    return stmt.order_by(value, id_column.desc() if descending else id_column.asc())


def keyset_page(
    stmt: Select[Any],
    *,
    sort: str,
    sortable: Mapping[str, InstrumentedAttribute[Any]],
    id_column: InstrumentedAttribute[Any],
    cursor: str | None,
) -> Select[Any]:
    """``stmt`` after the cursor, in the page order (the caller adds the limit)."""
    descending = sort.startswith("-")
    column = sortable[sort.lstrip("-")]
    if cursor:
        value, row_id = _decode_cursor(cursor, sort, column, id_column)
        stmt = stmt.where(_after(column, id_column, descending, (value, row_id), value is None))
    return _ordered(stmt, column, id_column, descending)


# The bound parameters of a ``keyset_template``.
AFTER_VALUE, AFTER_ID, PAGE_SIZE = "keyset_after_value", "keyset_after_id", "keyset_page_size"

Position = Literal["start", "after", "after_empty"]
"""Where a page starts: at the first row, after a row with a sort value, or after an
empty one (null): each its own statement."""


def keyset_template(
    stmt: Select[Any],
    *,
    sort: str,
    sortable: Mapping[str, InstrumentedAttribute[Any]],
    id_column: InstrumentedAttribute[Any],
    position: Position,
) -> Select[Any]:
    """``keyset_page`` with its limit, for a statement built once (``app.reads.Read``) for
    each ``position``: the cursor's values and the page size are bound parameters, given by
    ``keyset_params``."""
    descending = sort.startswith("-")
    column = sortable[sort.lstrip("-")]
    if position != "start":
        bound = (
            bindparam(AFTER_VALUE, type_=column.type),
            bindparam(AFTER_ID, type_=id_column.type),
        )
        empty = position == "after_empty"
        stmt = stmt.where(_after(column, id_column, descending, bound, empty))
    return _ordered(stmt, column, id_column, descending).limit(bindparam(PAGE_SIZE, type_=Integer))


def position_of(params: Mapping[str, Any]) -> Position:
    """The position of the page ``keyset_params`` gave these parameters for."""
    if AFTER_ID not in params:
        return "start"
    return "after_empty" if params[AFTER_VALUE] is None else "after"


def keyset_params(
    cursor: str | None,
    *,
    sort: str,
    sortable: Mapping[str, InstrumentedAttribute[Any]],
    id_column: InstrumentedAttribute[Any],
    limit: int,
) -> dict[str, Any]:
    """The parameters of a ``keyset_template`` (``after`` when there is a cursor): one row
    more than the page, so ``cut_page`` knows whether another follows."""
    params: dict[str, Any] = {PAGE_SIZE: limit + 1}
    if cursor:
        column = sortable[sort.lstrip("-")]
        params[AFTER_VALUE], params[AFTER_ID] = _decode_cursor(cursor, sort, column, id_column)
    return params


def cut_page(
    rows: Sequence[Any], limit: int, sort: str, key: Callable[[Any], tuple[Any, Any]]
) -> tuple[Sequence[Any], str | None]:
    """The page of up to ``limit + 1`` rows fetched, and the cursor after its last row
    (``key`` gives the row's sort value and id), or None when no row follows."""
    if len(rows) <= limit:
        return rows, None
    value, row_id = key(rows[limit - 1])
    return rows[:limit], _encode_cursor(sort, value, row_id)


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    *,
    sort: str,
    sortable: Mapping[str, InstrumentedAttribute[Any]],
    id_column: InstrumentedAttribute[Any],
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[Any], str | None]:
    """One page of ``stmt`` ordered by ``sort`` (``name`` or ``-name``), ties broken by id,
    empty values last."""
    column = sortable[sort.lstrip("-")]
    page = keyset_page(stmt, sort=sort, sortable=sortable, id_column=id_column, cursor=cursor)
    result = await session.execute(page.limit(limit + 1))
    # A statement of one entity (or one column) answers its objects; one of several columns,
    # its rows, which have the same attributes without an ORM object built for each; an
    # entity and columns beside it (the names it shows), rows that start with the object.
    descriptions = stmt.column_descriptions
    rows = result.scalars().all() if len(descriptions) == 1 else result.all()
    entity_first = len(descriptions) > 1 and isinstance(descriptions[0]["expr"], type)

    def key(last: Any) -> tuple[Any, Any]:
        holder = last[0] if entity_first else last
        return getattr(holder, column.key), getattr(holder, id_column.key)

    return cut_page(rows, limit, sort, key)
