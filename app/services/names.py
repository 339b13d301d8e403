"""The names a screen shows beside the ids: ``customer_name`` and ``owner_name``.

A read schema that has either field shows the name of the row its ``customer_id`` or
``owner_id`` points at. Lists and reads select them in the same statement as the rows, as
correlated scalar subqueries (``name_column``): each is one primary-key look-up per row
answered, and leaves the statement's filters, order and plan as they were (a join would
give the planner another table to start from). An answer made from an ORM object (after a
write) takes them from what the request already read (``remember``), or, when it read
neither, from one small statement (``names_for``).

Names are kept per session by the id they belong to, not by the row that shows them, so a
reassigned record finds its new owner's name, never the old one.
"""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Label, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import driver_connection
from app.models.customers import Customer
from app.models.people import User
from app.reads import Read

# Each name field: the id field beside it, the name column and the key it is looked up by.
NAMED: dict[str, tuple[str, Any, Any]] = {
    "customer_name": ("customer_id", Customer.name, Customer.id),
    "owner_name": ("owner_id", User.full_name, User.id),
}
_KNOWN = "shown_names"


def name_fields(schema: type[BaseModel]) -> tuple[str, ...]:
    """The name fields ``schema`` shows, in its fields' order."""
    return tuple(field for field in schema.model_fields if field in NAMED)


def name_column(id_column: Any, field: str) -> Label[Any]:
    """``field`` of the row ``id_column`` points at, as a correlated scalar subquery."""
    _, name, key = NAMED[field]
    return select(name).where(key == id_column).scalar_subquery().label(field)


def name_columns(model: Any, schema: type[BaseModel]) -> list[Label[Any]]:
    """The columns of the names ``schema`` shows for rows of ``model``."""
    return [name_column(getattr(model, NAMED[field][0]), field) for field in name_fields(schema)]


def _known(session: AsyncSession) -> dict[str, dict[uuid.UUID, str]]:
    known: dict[str, dict[uuid.UUID, str]] = session.info.setdefault(_KNOWN, {})
    return known


def remember(session: AsyncSession, values: dict[str, Any]) -> None:
    """Keep the names among ``values`` (a row's or an answer's, with their ids) for this
    session's later answers."""
    known = _known(session)
    for field, (id_field, _, _) in NAMED.items():
        if field in values and values.get(id_field) is not None:
            known.setdefault(field, {})[values[id_field]] = values[field]


def remember_of(session: AsyncSession, obj: Any, shown: dict[str, Any]) -> None:
    """Keep the names ``shown`` for ``obj`` (read beside it), by the ids ``obj`` holds."""
    remember(session, {**{NAMED[f][0]: getattr(obj, NAMED[f][0]) for f in shown}, **shown})


def remember_customer(session: AsyncSession, customer: Customer) -> None:
    remember(session, {"customer_id": customer.id, "customer_name": customer.name})


def remember_user(session: AsyncSession, user_id: uuid.UUID, full_name: str) -> None:
    remember(session, {"owner_id": user_id, "owner_name": full_name})


@cache
def _names_read(fields: tuple[str, ...]) -> Read:
    # A SELECT of scalar subqueries only: one row, each name null if its row is gone.
    columns = [
        name_column(bindparam(NAMED[field][0], type_=NAMED[field][2].type), field)
        for field in fields
    ]
    return Read(select(*columns))


async def names_for(session: AsyncSession, schema: type[BaseModel], obj: Any) -> dict[str, Any]:
    """The names ``schema`` shows for ``obj``: those the session knows, the others read in
    one statement."""
    fields = name_fields(schema)
    known = _known(session)
    found: dict[str, Any] = {}
    missing = []
    for field in fields:
        key = getattr(obj, NAMED[field][0])
        if key in known.get(field, {}):
            found[field] = known[field][key]
        else:
            missing.append(field)
    if missing:
        ids = {NAMED[field][0]: getattr(obj, NAMED[field][0]) for field in missing}
        row = await _names_read(tuple(missing)).first(await driver_connection(session), ids)
        assert row is not None  # a SELECT without FROM answers one row
        read = dict(zip(missing, row, strict=True))
        remember(session, {**ids, **read})
        found.update(read)
    return found
