"""Factories for contracts: won opportunities with an accepted quote, contracts in any status."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx

from app.db import Database
from app.models.contracts import (
    Contract,
    ContractCreate,
    ContractStatus,
    InstallmentCreate,
    ReviewStep,
)
from app.models.pipeline import Opportunity, Stage
from app.models.quotes import QuoteStatus
from app.models.types import utcnow
from app.services import collections
from app.services import contracts as contract_service
from app.services.department import DepartmentSettings, today
from tests.factories import Person
from tests.pipeline_helpers import make_opportunity, make_quote

API = "/api/v1"
# make_quote prices two units of one product: a list price of 300,000 is a 600,000 contract,
# above the default director threshold of 500,000.
LARGE = "300000.00"
SMALL = "1000.00"


async def make_won_opportunity(
    database: Database, owner: Person, *, list_price: str = SMALL
) -> Opportunity:
    """A won opportunity with an accepted quote (two units at ``list_price``)."""
    opp = await make_opportunity(database, owner, Stage.NEGOTIATION)
    quote = await make_quote(database, owner, opp, QuoteStatus.ACCEPTED, list_price=list_price)
    async with database.session() as session, session.begin():
        row = await session.get_one(Opportunity, opp.id)
        row.stage, row.amount = Stage.WON, quote.total
        row.won_at = row.closed_at = utcnow()
    return row


async def make_contract(
    database: Database,
    owner: Person,
    status: ContractStatus = ContractStatus.DRAFT,
    *,
    list_price: str = SMALL,
    plan: bool = True,
    review_step: ReviewStep = ReviewStep.MANAGER,
) -> Contract:
    """A contract drafted through the service (with a one-installment plan unless ``plan``
    is false), then put straight into ``status`` (bypassing the workflow, for set-up)."""
    opp = await make_won_opportunity(database, owner, list_price=list_price)
    async with database.session() as session, session.begin():
        session.info["actor_id"] = owner.id
        contract = await contract_service.create_contract(
            session, owner.actor, ContractCreate(opportunity_id=opp.id)
        )
        if plan:
            due = today() + timedelta(days=30)
            await collections.add_installment(
                session,
                owner.actor,
                contract.id,
                InstallmentCreate(due_date=due, amount=contract.amount),
                None,
            )
        contract.status = status
        if status == ContractStatus.UNDER_REVIEW:
            contract.review_step = review_step
            threshold = DepartmentSettings().contract_director_threshold
            contract.director_review = contract.amount > threshold
            contract.review_started_at = utcnow()
            contract.review_due_at = utcnow() + timedelta(hours=9)
        if status in (ContractStatus.SIGNED, ContractStatus.IN_PROGRESS):
            contract.signed_at = utcnow()
    return contract


async def move(
    client: httpx.AsyncClient, who: Person, contract_id: object, to: str, **extra: str
) -> httpx.Response:
    return await client.post(
        f"{API}/contracts/{contract_id}/transitions", json={"to": to, **extra}, headers=who.headers
    )


def money(value: str) -> Decimal:
    """A money string from the API, checked to be written with exactly two places."""
    assert isinstance(value, str) and value.count(".") == 1 and len(value.split(".")[1]) == 2
    return Decimal(value)
