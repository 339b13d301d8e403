"""Opportunities: the pipeline's stages, their gates, and who may move them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.errors import Conflict
from app.models.pipeline import (
    NEXT_STAGE,
    OPEN_STAGES,
    STAGE_PROBABILITY,
    Opportunity,
    OpportunityCreate,
    OpportunityRead,
    OpportunityUpdate,
    Stage,
)
from app.models.platform import StateChange
from app.models.quotes import Quote, QuoteStatus
from app.models.types import utcnow
from app.pagination import paginate
from app.permissions import Actor
from app.services import department, names
from app.services.common import (
    apply_changes,
    ensure_version,
    get_in_scope,
    in_scope,
    matches_text,
)
from app.services.customers import counted_amount, follow_opportunity, get_customer
from app.workflow import MANAGERS, MoveOption, Rule, Workflow

OPPORTUNITY_SORTS = {
    "created_at": Opportunity.created_at,
    "updated_at": Opportunity.updated_at,
    "amount": Opportunity.amount,
    "expected_close_date": Opportunity.expected_close_date,
}
CLOSED = frozenset({Stage.WON.value, Stage.LOST.value})
_NAME_COLUMNS = names.name_columns(Opportunity, OpportunityRead)


# Gates: each answers None, or what is missing. The function name is the 409 ``reason``.


async def needs_recorded(
    session: AsyncSession, opp: Opportunity, _: Mapping[str, Any]
) -> str | None:
    return None if (opp.needs_summary or "").strip() else "Record the customer's needs first."


async def quote_exists(session: AsyncSession, opp: Opportunity, _: Mapping[str, Any]) -> str | None:
    found = (await session.scalars(select(Quote.id).where(Quote.opportunity_id == opp.id))).first()
    return None if found else "Draft at least one quote first."


async def quote_accepted(
    session: AsyncSession, opp: Opportunity, _: Mapping[str, Any]
) -> str | None:
    return None if await accepted_quote(session, opp) else "A quote must be accepted first."


async def reopens_to_lost_stage(
    session: AsyncSession, opp: Opportunity, move: Mapping[str, Any]
) -> str | None:
    if move.get("to") in (None, opp.lost_from_stage):
        return None
    return f"A lost opportunity reopens to the stage it was lost from ({opp.lost_from_stage})."


async def accepted_quote(session: AsyncSession, opp: Opportunity) -> Quote | None:
    stmt = select(Quote).where(Quote.opportunity_id == opp.id, Quote.status == QuoteStatus.ACCEPTED)
    return (await session.scalars(stmt)).first()


# Effects: what a move does besides changing the stage.


async def _win(session: AsyncSession, _: Actor, opp: Opportunity, __: Mapping[str, Any]) -> None:
    quote = await accepted_quote(session, opp)
    assert quote is not None  # the gate made sure
    opp.amount = quote.total
    opp.won_at = opp.closed_at = utcnow()
    opp.probability = None


async def _lose(session: AsyncSession, _: Actor, opp: Opportunity, move: Mapping[str, Any]) -> None:
    opp.lost_reason = move["lost_reason"]
    opp.lost_from_stage = move["from"]
    opp.closed_at = utcnow()


async def _reopen(session: AsyncSession, _: Actor, opp: Opportunity, __: Mapping[str, Any]) -> None:
    opp.lost_reason = opp.lost_from_stage = opp.closed_at = None


def _stage_table() -> dict[str, dict[str, Rule]]:
    """One step forward, back to any earlier open stage with a note, lost from any open stage
    with a reason and a note; a lost one reopens (managers, director) to where it was lost."""
    forward_gates = {Stage.PROPOSAL: (needs_recorded,), Stage.NEGOTIATION: (quote_exists,)}
    table: dict[str, dict[str, Rule]] = {}
    for index, stage in enumerate(OPEN_STAGES):
        moves: dict[str, Rule] = {}
        for earlier in OPEN_STAGES[:index]:
            moves[earlier] = Rule(needs=("note",))
        if index + 1 < len(OPEN_STAGES):
            nxt = OPEN_STAGES[index + 1]
            moves[nxt] = Rule(gates=forward_gates.get(nxt, ()))
        else:
            moves[Stage.WON] = Rule(gates=(quote_accepted,), effect=_win, event="opportunity.won")
        moves[Stage.LOST] = Rule(
            needs=("lost_reason", "note"), effect=_lose, event="opportunity.lost"
        )
        table[stage] = moves
    table[Stage.LOST] = {
        stage: Rule(
            roles=MANAGERS,
            gates=(reopens_to_lost_stage,),
            effect=_reopen,
            event="opportunity.reopened",
        )
        for stage in OPEN_STAGES
    }
    return table


STAGE_TRANSITIONS = _stage_table()


def visible_opportunities(actor: Actor) -> ColumnElement[bool]:
    return in_scope(Opportunity, actor)


async def to_read(
    session: AsyncSession, opp: Opportunity, shown: dict[str, Any] | None = None
) -> OpportunityRead:
    """The opportunity as the API shows it; ``shown``: its names, when read beside it."""
    probability = opp.probability
    if probability is None:
        probability = STAGE_PROBABILITY[Stage(opp.stage)]
    if shown is None:
        shown = await names.names_for(session, OpportunityRead, opp)
    return OpportunityRead.model_validate({**opp.model_dump(), **shown, "probability": probability})


class OpportunityMoveOption(MoveOption[Stage, Literal["note", "lost_reason"]]):
    """A move an opportunity may make now."""


WORKFLOW: Workflow[Opportunity] = Workflow(
    entity_type="opportunity",
    state_field="stage",
    table=STAGE_TRANSITIONS,
    to_read=to_read,
    option=OpportunityMoveOption,
    default_event="opportunity.stage_changed",
    closed_states=CLOSED,
    next_states=NEXT_STAGE,
)


async def list_opportunities(
    session: AsyncSession,
    actor: Actor,
    *,
    stage: Stage | None = None,
    owner_id: uuid.UUID | None = None,
    region_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    expected_close_from: date | None = None,
    expected_close_to: date | None = None,
    q: str | None = None,
    sort: str = "-created_at",
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[OpportunityRead], str | None]:
    stmt: Select[Any] = select(Opportunity, *_NAME_COLUMNS).where(visible_opportunities(actor))
    for column, value in (
        (Opportunity.stage, stage),
        (Opportunity.owner_id, owner_id),
        (Opportunity.region_id, region_id),
        (Opportunity.customer_id, customer_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if expected_close_from is not None:
        stmt = stmt.where(Opportunity.expected_close_date >= expected_close_from)
    if expected_close_to is not None:
        stmt = stmt.where(Opportunity.expected_close_date <= expected_close_to)
    if q:
        stmt = stmt.where(matches_text(q, Opportunity.title))
    rows, next_cursor = await paginate(
        session,
        stmt,
        sort=sort,
        sortable=OPPORTUNITY_SORTS,
        id_column=Opportunity.id,
        cursor=cursor,
        limit=limit,
    )
    fields = names.name_fields(OpportunityRead)
    return [
        await to_read(session, row[0], dict(zip(fields, row[1:], strict=True))) for row in rows
    ], next_cursor


async def get_opportunity(
    session: AsyncSession, actor: Actor, opportunity_id: uuid.UUID, *, shown: bool = False
) -> Opportunity:
    """The opportunity in scope (404 otherwise); ``shown``: with the names its answer
    shows, read in the same statement."""
    return await get_in_scope(
        session,
        Opportunity,
        opportunity_id,
        actor,
        name="opportunity",
        shown=OpportunityRead if shown else None,
    )


async def create_opportunity(
    session: AsyncSession, actor: Actor, data: OpportunityCreate
) -> Opportunity:
    customer = await get_customer(session, actor, data.customer_id)
    await department.refuse_past(
        session,
        ["body", "expected_close_date"],
        data.expected_close_date,
        "A new opportunity is expected to close",
    )
    opp = Opportunity(
        **data.model_dump(exclude={"customer_id"}),
        customer_id=customer.id,
        owner_id=customer.owner_id,
        region_id=customer.region_id,
    )
    if opp.amount is None:
        opp.amount = Decimal("0.00")
    session.add(opp)
    await session.flush()
    events.record(session, "opportunity.created", opp, await to_read(session, opp))
    await follow_opportunity(session, opp, None)
    return opp


def _refuse_if_closed(opp: Opportunity) -> None:
    if opp.stage in CLOSED:
        raise Conflict(
            f"The opportunity is {opp.stage}; closed opportunities do not change.",
            reason="opportunity_closed",
        )


async def update_opportunity(
    session: AsyncSession,
    actor: Actor,
    opportunity_id: uuid.UUID,
    data: OpportunityUpdate,
    expected: int | None,
) -> Opportunity:
    opp = await get_opportunity(session, actor, opportunity_id, shown=True)
    ensure_version(opp, expected)
    _refuse_if_closed(opp)
    counted = counted_amount(opp)
    apply_changes(opp, data)
    await session.flush()
    events.record(session, "opportunity.updated", opp, await to_read(session, opp))
    await follow_opportunity(session, opp, counted)
    return opp


async def delete_opportunity(
    session: AsyncSession, actor: Actor, opportunity_id: uuid.UUID, expected: int | None
) -> None:
    opp = await get_opportunity(session, actor, opportunity_id)
    ensure_version(opp, expected)
    counted = counted_amount(opp)
    opp.deleted_at = utcnow()
    await session.flush()
    events.record(session, "opportunity.deleted", opp, {"id": str(opp.id), "title": opp.title})
    await follow_opportunity(session, opp, counted)


async def transition(
    session: AsyncSession,
    actor: Actor,
    opportunity_id: uuid.UUID,
    to: str,
    fields: Mapping[str, Any],
    expected: int | None,
) -> Opportunity:
    opp = await get_opportunity(session, actor, opportunity_id, shown=True)
    counted = counted_amount(opp)
    await WORKFLOW.transition(session, actor, opp, to, fields, expected)
    # Only a move that opens or closes it, such as to won or lost, reads anything more.
    await follow_opportunity(session, opp, counted)
    return opp


async def history(
    session: AsyncSession, actor: Actor, opportunity_id: uuid.UUID
) -> Sequence[StateChange]:
    return await WORKFLOW.history(session, await get_opportunity(session, actor, opportunity_id))
