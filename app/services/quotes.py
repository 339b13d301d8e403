"""Quotes: server-computed totals, discount approval, and the quote workflow."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import events
from app.errors import Conflict, ValidationFailed
from app.models.people import Role
from app.models.pipeline import OPEN_STAGES, Opportunity, Product
from app.models.quotes import (
    Quote,
    QuoteCreate,
    QuoteLine,
    QuoteLineInput,
    QuoteLineRead,
    QuoteRead,
    QuoteStatus,
    QuoteUpdate,
)
from app.models.types import CENT, utcnow
from app.permissions import Actor
from app.services import department
from app.services.common import ensure_version, get_visible
from app.services.opportunities import get_opportunity, visible_opportunities
from app.workflow import MANAGERS, MoveOption, Rule, Workflow

HUNDRED = Decimal(100)


def _percent(part: Decimal, whole: Decimal) -> Decimal:
    if whole <= 0:
        return Decimal("0.00")
    return ((1 - part / whole) * HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)


def _above_limit(priced: Sequence[tuple[Decimal, Decimal, Decimal]], limit: Decimal) -> bool:
    """Whether the effective discount of these (quantity, list price, unit price) lines is
    above ``limit`` percent, by any amount: the unrounded amounts are compared, as rounding
    the percentage first would hand a 10.001% discount to the manager."""
    # Enough digits for 200 lines of the largest quantities and prices: nothing rounds, and
    # discount ÷ list > limit ÷ 100 is multiplied out, so nothing is divided either.
    with localcontext(prec=80):
        at_list = sum((quantity * list_price for quantity, list_price, _ in priced), Decimal(0))
        quoted = sum((quantity * price for quantity, _, price in priced), Decimal(0))
        return (at_list - quoted) * HUNDRED > at_list * limit


async def _lines(session: AsyncSession, quote: Quote) -> Sequence[QuoteLine]:
    stmt = select(QuoteLine).where(QuoteLine.quote_id == quote.id).order_by(QuoteLine.position)
    return (await session.scalars(stmt)).all()


async def to_read(session: AsyncSession, quote: Quote) -> QuoteRead:
    lines = [QuoteLineRead.model_validate(line) for line in await _lines(session, quote)]
    return QuoteRead.model_validate({**quote.model_dump(), "lines": lines})


async def _replace_lines(
    session: AsyncSession, quote: Quote, inputs: Sequence[QuoteLineInput]
) -> None:
    """Price the lines from the catalogue and recompute the totals and the approver."""
    await session.execute(delete(QuoteLine).where(QuoteLine.quote_id == quote.id))
    ids = {line.product_id for line in inputs}
    products = {
        p.id: p
        for p in (
            await session.scalars(
                select(Product).where(Product.id.in_(ids), Product.is_active.is_(True))
            )
        ).all()
    }
    subtotal = total = Decimal("0.00")
    priced: list[tuple[Decimal, Decimal, Decimal]] = []  # (quantity, list price, unit price)
    discounted = False
    for position, line in enumerate(inputs):
        product = products.get(line.product_id)
        if product is None:
            raise ValidationFailed(
                ["body", "lines", position, "product_id"], "No active product with this id."
            )
        unit_price = line.unit_price if line.unit_price is not None else product.list_price
        line_total = (unit_price * line.quantity).quantize(CENT, rounding=ROUND_HALF_UP)
        list_total = (product.list_price * line.quantity).quantize(CENT, rounding=ROUND_HALF_UP)
        discounted = discounted or unit_price < product.list_price
        priced.append((line.quantity, product.list_price, unit_price))
        subtotal += list_total
        total += line_total
        session.add(
            QuoteLine(
                quote_id=quote.id,
                position=position,
                product_id=product.id,
                quantity=line.quantity,
                unit_price=unit_price,
                list_price=product.list_price,
                discount_percent=max(_percent(unit_price, product.list_price), Decimal("0.00")),
                line_total=line_total,
            )
        )
    quote.subtotal, quote.total = subtotal, total
    quote.discount_percent = max(_percent(total, subtotal), Decimal("0.00"))
    settings = await department.load(session)
    if not discounted:
        quote.approver_role = None
    elif not _above_limit(priced, settings.manager_max_discount_percent):
        quote.approver_role = Role.REGIONAL_MANAGER
    else:
        quote.approver_role = Role.DIRECTOR


# Gates and authorities of the quote workflow.


async def has_lines(session: AsyncSession, quote: Quote, _: Mapping[str, Any]) -> str | None:
    return None if await _lines(session, quote) else "Add at least one line first."


async def needs_approval(session: AsyncSession, quote: Quote, _: Mapping[str, Any]) -> str | None:
    return None if quote.approver_role else "No line is discounted: the quote approves on submit."


async def no_discount(session: AsyncSession, quote: Quote, _: Mapping[str, Any]) -> str | None:
    return None if not quote.approver_role else "A discounted quote needs approval."


async def still_valid(session: AsyncSession, quote: Quote, _: Mapping[str, Any]) -> str | None:
    """A quote is good through its ``valid_until`` (a local date): neither sent nor accepted
    after it."""
    today = department.today(await department.load(session))
    if quote.valid_until is not None and quote.valid_until < today:
        return f"The quote was valid until {quote.valid_until}; change the date in a new draft."
    return None


async def _refuse_past_validity(session: AsyncSession, valid_until: date | None) -> None:
    await department.refuse_past(
        session, ["body", "valid_until"], valid_until, "A quote is valid until"
    )


async def only_accepted_quote(
    session: AsyncSession, quote: Quote, _: Mapping[str, Any]
) -> str | None:
    other = (
        await session.scalars(
            select(Quote.id).where(
                Quote.opportunity_id == quote.opportunity_id,
                Quote.status == QuoteStatus.ACCEPTED,
                Quote.id != quote.id,
            )
        )
    ).first()
    return "Another quote of this opportunity is accepted already." if other else None


def _approver(actor: Actor, quote: Quote) -> str | None:
    if quote.approver_role == Role.DIRECTOR and not actor.is_director:
        return (
            f"A {quote.discount_percent}% discount is above the managers' limit: "
            "the director approves it."
        )
    return None


async def _submitted(
    session: AsyncSession, actor: Actor, quote: Quote, _: Mapping[str, Any]
) -> None:
    quote.submitted_at, quote.submitted_by_id = utcnow(), actor.id


async def _decided(
    session: AsyncSession, actor: Actor, quote: Quote, move: Mapping[str, Any]
) -> None:
    quote.decided_at, quote.decided_by_id = utcnow(), actor.id
    quote.decision_note = move.get("note")
    if move["from"] == QuoteStatus.DRAFT:
        await _submitted(session, actor, quote, move)


QUOTE_TRANSITIONS: dict[str, dict[str, Rule]] = {
    QuoteStatus.DRAFT: {
        QuoteStatus.PENDING_APPROVAL: Rule(
            gates=(has_lines, needs_approval), effect=_submitted, event="quote.approval_requested"
        ),
        QuoteStatus.APPROVED: Rule(
            gates=(has_lines, no_discount), effect=_decided, event="quote.approved"
        ),
    },
    QuoteStatus.PENDING_APPROVAL: {
        QuoteStatus.APPROVED: Rule(
            roles=MANAGERS, authority=_approver, effect=_decided, event="quote.approved"
        ),
        QuoteStatus.REJECTED: Rule(
            roles=MANAGERS,
            authority=_approver,
            needs=("note",),
            effect=_decided,
            event="quote.rejected",
        ),
    },
    QuoteStatus.REJECTED: {QuoteStatus.DRAFT: Rule()},
    QuoteStatus.APPROVED: {QuoteStatus.SENT: Rule(gates=(still_valid,), event="quote.sent")},
    QuoteStatus.SENT: {
        QuoteStatus.ACCEPTED: Rule(
            gates=(still_valid, only_accepted_quote), event="quote.accepted"
        ),
        QuoteStatus.DECLINED: Rule(event="quote.declined"),
        QuoteStatus.EXPIRED: Rule(event="quote.expired"),
    },
}


async def _event_scope(session: AsyncSession, quote: Quote) -> Opportunity:
    return await session.get_one(Opportunity, quote.opportunity_id)


class QuoteMoveOption(MoveOption[QuoteStatus, Literal["note"]]):
    """A move a quote may make now."""


WORKFLOW: Workflow[Quote] = Workflow(
    entity_type="quote",
    state_field="status",
    table=QUOTE_TRANSITIONS,
    to_read=to_read,
    option=QuoteMoveOption,
    default_event="quote.status_changed",
    event_scope=_event_scope,
)


def _visible(actor: Actor) -> Any:
    return Quote.opportunity_id.in_(select(Opportunity.id).where(visible_opportunities(actor)))


async def get_quote(session: AsyncSession, actor: Actor, quote_id: uuid.UUID) -> Quote:
    return await get_visible(session, Quote, quote_id, _visible(actor), name="quote")


async def list_quotes(
    session: AsyncSession, actor: Actor, opportunity_id: uuid.UUID
) -> list[QuoteRead]:
    opp = await get_opportunity(session, actor, opportunity_id)
    stmt = select(Quote).where(Quote.opportunity_id == opp.id).order_by(Quote.created_at, Quote.id)
    return [await to_read(session, q) for q in (await session.scalars(stmt)).all()]


async def create_quote(
    session: AsyncSession, actor: Actor, opportunity_id: uuid.UUID, data: QuoteCreate
) -> Quote:
    opp = await get_opportunity(session, actor, opportunity_id)
    if opp.stage not in OPEN_STAGES:
        raise Conflict(
            "Quotes are drafted for open opportunities only.", reason="opportunity_closed"
        )
    await _refuse_past_validity(session, data.valid_until)
    quote = Quote(**data.model_dump(exclude={"lines"}), opportunity_id=opp.id)
    session.add(quote)
    await session.flush()
    await _replace_lines(session, quote, data.lines)
    await session.flush()
    events.record(session, "quote.created", quote, await to_read(session, quote), scope=opp)
    return quote


async def update_quote(
    session: AsyncSession,
    actor: Actor,
    quote_id: uuid.UUID,
    data: QuoteUpdate,
    expected: int | None,
) -> Quote:
    quote = await get_quote(session, actor, quote_id)
    ensure_version(quote, expected)
    if quote.status != QuoteStatus.DRAFT:
        raise Conflict(
            f"The quote is {quote.status}; only drafts change.", reason="quote_not_draft"
        )
    sent = data.model_dump(exclude_unset=True, exclude={"lines"})
    await _refuse_past_validity(session, sent.get("valid_until"))
    for key, value in sent.items():
        setattr(quote, key, value)
    if data.lines is not None:
        await _replace_lines(session, quote, data.lines)
    quote.updated_at = utcnow()  # lines live in their own table: the quote's version moves too
    await session.flush()
    opp = await session.get_one(Opportunity, quote.opportunity_id)
    events.record(session, "quote.updated", quote, await to_read(session, quote), scope=opp)
    return quote


async def transition(
    session: AsyncSession,
    actor: Actor,
    quote_id: uuid.UUID,
    to: str,
    fields: Mapping[str, Any],
    expected: int | None,
) -> Quote:
    quote = await get_quote(session, actor, quote_id)
    if (
        to == QuoteStatus.PENDING_APPROVAL
        and quote.status == QuoteStatus.DRAFT
        and await has_lines(session, quote, {}) is None
        and not quote.approver_role
    ):
        # A quote without a discount needs nobody's approval: submitting approves it.
        to = QuoteStatus.APPROVED
    return await WORKFLOW.transition(session, actor, quote, to, fields, expected)


EXPIRY_BATCH = 100


async def expire_overdue(session: AsyncSession, batch_size: int = EXPIRY_BATCH) -> int:
    """Move up to ``batch_size`` sent quotes past their ``valid_until`` to ``expired``, as
    the system, through the workflow (history, ``quote.status_changed``, ``quote.expired``);
    returns how many. Run by the worker, one batch a transaction.

    Once expired a quote is no longer sent, so no quote expires twice: on PostgreSQL the
    batch's rows are locked with ``SKIP LOCKED`` so concurrent workers share the work, and
    SQLite's writers queue on the database lock.
    """
    today = department.today(await department.load(session))
    stmt = (
        select(Quote)
        .where(Quote.status == QuoteStatus.SENT, Quote.valid_until < today)
        .order_by(Quote.valid_until, Quote.id)
        .limit(batch_size)
        .with_for_update(skip_locked=True)  # SQLite renders no FOR UPDATE
    )
    quotes = (await session.scalars(stmt)).all()
    for quote in quotes:
        note = f"Valid until {quote.valid_until}."
        await WORKFLOW.transition(session, None, quote, QuoteStatus.EXPIRED, {"note": note}, None)
    return len(quotes)
