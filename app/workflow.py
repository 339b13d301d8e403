"""The one state-machine mechanism every workflow resource uses.

A workflow is data: ``{from_state: {to_state: Rule}}`` beside the model. ``transition``
checks the move (409 ``invalid_transition``), the caller's role (403), the fields the move
needs (422) and its gates (409 ``conflict`` with a reason), then writes. The write is a
versioned UPDATE (``WHERE version = :seen``), so of two concurrent moves only one wins; the
loser gets 412. Every move leaves a history row and an event in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import events, pending_rows
from app.db import driver_connection
from app.errors import Conflict, Forbidden, InvalidTransition, ValidationFailed
from app.models.people import Role
from app.models.platform import StateChange
from app.models.types import utcnow
from app.permissions import Actor
from app.reads import Read
from app.services.common import ensure_version

M = TypeVar("M")

Gate = Callable[[AsyncSession, Any, Mapping[str, Any]], Awaitable[str | None]]
"""Answers None when the move may go ahead, else a sentence saying what is missing.
Its ``__name__`` is the machine-readable ``reason``."""

Authority = Callable[[Actor, Any], str | None]
"""Beyond the role: None when this actor may take the move on this record, else why not."""

Effect = Callable[[AsyncSession, Actor, Any, Mapping[str, Any]], Awaitable[None]]
"""What a move does besides changing the state (set amounts, timestamps, follow-on records)."""

ALL_ROLES = frozenset(Role)
MANAGERS = frozenset({Role.REGIONAL_MANAGER, Role.DIRECTOR})

_THIS_ENTITY = (
    StateChange.entity_type == bindparam("resource_type"),
    StateChange.entity_id == bindparam("resource_id"),
)
# When the resource entered its current state: the latest change's time.
_ENTERED = select(func.max(StateChange.at)).where(*_THIS_ENTITY)
# A move into a next state stamps the changes into the states before it.
_STAMP = (
    update(StateChange)
    .where(*_THIS_ENTITY, StateChange.to_state.in_(bindparam("moved_on_from", expanding=True)))
    .values(next_state_at=bindparam("stamp_at"))
    .execution_options(synchronize_session=False)
)
_READ_ENTERED = Read(_ENTERED)
# PostgreSQL: both in one statement. An UPDATE in a WITH runs once whatever the SELECT reads,
# and the SELECT sees the rows as they were before it (the stamp changes no ``at``).
_READ_ENTERED_AND_STAMP = Read(_ENTERED.add_cte(_STAMP.cte("stamped")))
_STATE_CHANGES = StateChange.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role] = ALL_ROLES
    needs: tuple[str, ...] = ()
    gates: tuple[Gate, ...] = ()
    authority: Authority | None = None
    effect: Effect | None = None
    event: str | None = None


S = TypeVar("S", bound=StrEnum)
F = TypeVar("F", bound=str)


class MoveOption(BaseModel, Generic[S, F]):
    """A move the caller may make now, for drawing buttons. ``to`` is of the resource's own
    state type and ``needs`` names fields of its transition body (each workflow names its
    subclass, e.g. ``OpportunityMoveOption``), so a generated client can post an offered
    move back as it is, with the fields it asks for."""

    to: S
    needs: list[F] = Field(description="The body fields this move needs besides `to`.")
    blocked_by: str | None = Field(
        description="The rule that would still refuse the move (its 409 `reason`), or null."
    )


@dataclass
class Workflow(Generic[M]):
    entity_type: str
    state_field: str
    table: Mapping[str, Mapping[str, Rule]]
    to_read: Callable[[AsyncSession, Any], Awaitable[BaseModel]]
    # What ``options`` answers: MoveOption over the resource's state enum.
    option: type[MoveOption[Any, Any]] | None = None
    default_event: str = ""
    event_scope: Callable[[AsyncSession, Any], Awaitable[Any]] | None = None
    closed_states: frozenset[str] = field(default_factory=frozenset)
    # For funnel reports: each state's next one. A move into a next state stamps the earlier
    # changes into the state before it with ``next_state_at``.
    next_states: Mapping[str, str] = field(default_factory=dict)

    def moves_from(self, state: str) -> Mapping[str, Rule]:
        return self.table.get(state, {})

    async def options(
        self, session: AsyncSession, actor: Actor, obj: Any
    ) -> list[MoveOption[Any, Any]]:
        """The moves this actor may take now, each with its needed fields and any gate that
        would still refuse it."""
        if self.option is None:
            raise TypeError(f"this {self.entity_type} workflow offers no moves to choose from")
        result = []
        for to, rule in self.moves_from(getattr(obj, self.state_field)).items():
            if actor.role not in rule.roles:
                continue
            if rule.authority is not None and rule.authority(actor, obj) is not None:
                continue
            blocked = None
            for gate in rule.gates:
                if await gate(session, obj, {"to": to}) is not None:
                    blocked = gate.__name__
                    break
            result.append(self.option(to=to, needs=list(rule.needs), blocked_by=blocked))
        return result

    async def transition(
        self,
        session: AsyncSession,
        actor: Actor | None,
        obj: Any,
        to: str,
        fields: Mapping[str, Any],
        expected_version: int | None,
    ) -> Any:
        """Take the move ``to``. ``actor`` None is the system moving on its own (the worker):
        roles and authorities are for people, and its history row names nobody. It takes
        moves without an effect only, as effects act for someone."""
        # A stale If-Match is answered first: the client's view is outdated whatever it asks.
        ensure_version(obj, expected_version)
        current = getattr(obj, self.state_field)
        moves = self.moves_from(current)
        rule = moves.get(to)
        if rule is None:
            raise InvalidTransition(
                f"A {self.entity_type} cannot move from {current} to {to}.",
                current=current,
                allowed=[s for s, r in moves.items() if actor is None or actor.role in r.roles],
            )
        if actor is None:
            if rule.effect is not None:
                raise TypeError(f"The system does not take {to}: its effect acts for someone.")
        elif actor.role not in rule.roles:
            raise Forbidden(f"Your role may not move a {self.entity_type} to {to}.")
        elif rule.authority is not None and (why := rule.authority(actor, obj)) is not None:
            raise Forbidden(why)
        for name in rule.needs:
            if fields.get(name) in (None, ""):
                raise ValidationFailed(["body", name], f"Moving to {to} needs {name}.", "missing")
        context = {**fields, "to": to, "from": current}
        for gate in rule.gates:
            if (why := await gate(session, obj, context)) is not None:
                raise Conflict(why, reason=gate.__name__)
        now = utcnow()
        moved_on_from = [state for state, following in self.next_states.items() if following == to]
        entered = await _entered_and_stamp(
            session,
            {
                "resource_type": self.entity_type,
                "resource_id": obj.id,
                "moved_on_from": moved_on_from,
                "stamp_at": now,
            },
        )
        setattr(obj, self.state_field, to)
        if rule.effect is not None and actor is not None:
            await rule.effect(session, actor, obj, context)
        pending_rows.add(
            session,
            _STATE_CHANGES,
            {
                "id": uuid.uuid4(),
                "at": now,
                "entity_type": self.entity_type,
                "entity_id": obj.id,
                "from_state": current,
                "to_state": to,
                "actor_id": actor.id if actor is not None else None,
                "note": fields.get("note"),
                "from_state_at": entered or obj.created_at,
                "next_state_at": None,
                "owner_id": getattr(obj, "owner_id", None),
                "region_id": getattr(obj, "region_id", None),
            },
        )
        await session.flush()
        scope = await self.event_scope(session, obj) if self.event_scope else obj
        read = await self.to_read(session, obj)
        payload = {**read.model_dump(mode="json"), "from": current, "note": fields.get("note")}
        for type_ in dict.fromkeys(e for e in (self.default_event, rule.event) if e):
            events.record(session, type_, obj, payload, scope=scope)
        return obj

    async def history(self, session: AsyncSession, obj: Any) -> Sequence[StateChange]:
        stmt = (
            select(StateChange)
            .where(StateChange.entity_type == self.entity_type, StateChange.entity_id == obj.id)
            .order_by(StateChange.at, StateChange.id)
        )
        return (await session.scalars(stmt)).all()


async def _entered_and_stamp(session: AsyncSession, params: dict[str, Any]) -> datetime | None:
    """When the resource entered its current state (None before its first change), having
    stamped its changes into the states ``moved_on_from`` with ``stamp_at``: on PostgreSQL in
    one round trip, on SQLite (no UPDATE in a WITH) in two."""
    connection = await driver_connection(session)
    stamp = bool(params["moved_on_from"])
    if stamp and connection.dialect.name == "postgresql":
        # An aggregate: one row, its time null before the first change.
        [(entered,)] = await _READ_ENTERED_AND_STAMP.rows(connection, params)
        return entered
    [(entered,)] = await _READ_ENTERED.rows(connection, params)
    if stamp:
        await session.execute(_STAMP, params)
    return entered


async def follow_owner(
    session: AsyncSession,
    entity_type: str,
    entity_ids: Sequence[uuid.UUID],
    owner_id: uuid.UUID,
    region_id: uuid.UUID | None,
) -> None:
    """Moves the history of resources that changed hands to their new owner and region, as
    reports count a resource's past moves where the resource is now."""
    if entity_ids:
        await session.execute(
            update(StateChange)
            .where(StateChange.entity_type == entity_type, StateChange.entity_id.in_(entity_ids))
            .values(owner_id=owner_id, region_id=region_id)
            .execution_options(synchronize_session=False)
        )
