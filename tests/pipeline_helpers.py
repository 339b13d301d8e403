"""Factories for the pipeline: products, opportunities in any stage, quotes in any status."""

from __future__ import annotations

import itertools
from decimal import Decimal

from app.db import Database
from app.models.pipeline import Opportunity, Product, Stage
from app.models.quotes import Quote, QuoteCreate, QuoteLineInput, QuoteStatus
from app.services import quotes as quote_service
from tests.factories import Person, make_customer

_counter = itertools.count(1)


async def make_product(database: Database, list_price: str = "1000.00") -> Product:
    async with database.session() as session, session.begin():
        product = Product(
            sku=f"SKU-{next(_counter)}", name="Pump", unit="piece", list_price=Decimal(list_price)
        )
        session.add(product)
    return product


async def make_opportunity(
    database: Database,
    owner: Person,
    stage: Stage = Stage.LEAD,
    *,
    needs_summary: str | None = "Two pumps",
    lost_from_stage: Stage | None = None,
) -> Opportunity:
    """An opportunity put straight into ``stage`` (bypassing the workflow, for set-up)."""
    customer = await make_customer(database, owner)
    async with database.session() as session, session.begin():
        opp = Opportunity(
            customer_id=customer.id,
            title=f"Deal {next(_counter)}",
            owner_id=customer.owner_id,
            region_id=customer.region_id,
            stage=stage,
            needs_summary=needs_summary,
            lost_reason="price" if stage == Stage.LOST else None,
            lost_from_stage=lost_from_stage,
        )
        session.add(opp)
    return opp


async def make_quote(
    database: Database,
    owner: Person,
    opp: Opportunity,
    status: QuoteStatus = QuoteStatus.DRAFT,
    *,
    unit_price: str | None = None,
    list_price: str = "1000.00",
) -> Quote:
    """A quote with one line, priced through the service, then set to ``status``.
    ``opp`` must be open (quotes are drafted for open opportunities)."""
    product = await make_product(database, list_price)
    price = Decimal(unit_price) if unit_price else None
    async with database.session() as session, session.begin():
        line = QuoteLineInput(product_id=product.id, quantity=Decimal(2), unit_price=price)
        quote = await quote_service.create_quote(
            session, owner.actor, opp.id, QuoteCreate(lines=[line])
        )
        quote.status = status
    return quote
