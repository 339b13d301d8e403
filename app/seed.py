"""The demo organisation of api.md: two regions, a director, managers, reps and their
customers, contacts and follow-ups. Written through the services, so it has events and an
audit trail like real data. Running it twice changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.models.complaints import ComplaintCreate
from app.models.contracts import (
    ContractCreate,
    DeliveryCreate,
    Installment,
    InstallmentCreate,
    PaymentCreate,
)
from app.models.customers import (
    ContactCreate,
    Customer,
    CustomerCreate,
    FollowUpCreate,
    FollowUpKind,
    FollowUpStatus,
)
from app.models.people import Region, Role, User
from app.models.performance import MarketSizeCreate, Metric, TargetCreate, TargetScope
from app.models.pipeline import OpportunityCreate, ProductCreate
from app.models.quotes import QuoteCreate, QuoteLineInput
from app.models.types import CENT, utcnow
from app.periods import parse_period, period_containing
from app.permissions import Actor
from app.security import hash_password
from app.services import (
    collections,
    contacts,
    contract_workflow,
    customers,
    deliveries,
    department,
    follow_ups,
    opportunities,
    products,
    quotes,
    targets,
)
from app.services import complaints as complaint_service
from app.services import contracts as contract_service

DEMO_PASSWORD = "demo-password"
DIRECTOR_EMAIL = "director@example.com"

_PEOPLE = [
    ("director@example.com", "Wang Jun", Role.DIRECTOR, None),
    ("east.manager@example.com", "Li Na", Role.REGIONAL_MANAGER, "East"),
    ("north.manager@example.com", "Zhao Lei", Role.REGIONAL_MANAGER, "North"),
    ("east.rep1@example.com", "Chen Jie", Role.REP, "East"),
    ("east.rep2@example.com", "Liu Yang", Role.REP, "East"),
    ("north.rep1@example.com", "Sun Mei", Role.REP, "North"),
]

_CUSTOMERS = [
    (
        "east.rep1@example.com",
        "Shanghai Lianhua Trading Co.",
        "Retail",
        "referral",
        "+86 21 5555 0101",
        "Zhou Min",
        "Purchasing manager",
    ),
    (
        "east.rep1@example.com",
        "Hangzhou Westlake Instruments",
        "Manufacturing",
        "exhibition",
        "+86 571 5555 0102",
        "Xu Gang",
        "Chief engineer",
    ),
    (
        "east.rep1@example.com",
        "Suzhou Canal Logistics",
        "Logistics",
        "cold_call",
        "+86 512 5555 0103",
        "Gao Yan",
        "Operations director",
    ),
    (
        "east.rep2@example.com",
        "Nanjing Purple Mountain Foods",
        "Food processing",
        "web",
        "+86 25 5555 0104",
        "He Lin",
        "General manager",
    ),
    (
        "east.rep2@example.com",
        "Ningbo Harbour Machinery",
        "Machinery",
        "advertising",
        "+86 574 5555 0105",
        "Ma Qiang",
        "Procurement lead",
    ),
    (
        "north.rep1@example.com",
        "Beijing Capital Pharma",
        "Pharmaceuticals",
        "referral",
        "+86 10 5555 0106",
        "Tang Li",
        "Head of supply",
    ),
    (
        "north.rep1@example.com",
        "Tianjin Bohai Chemicals",
        "Chemicals",
        "exhibition",
        "+86 22 5555 0107",
        "Feng Tao",
        "Plant manager",
    ),
    (
        "north.manager@example.com",
        "Shenyang Northern Steel",
        "Steel",
        "existing_customer",
        "+86 24 5555 0108",
        "Guo Hui",
        "Vice president",
    ),
]


# Days since each customer's last visit: with the 30-day cadence of class C, every rep has
# at least one overdue customer.
_DAYS_SINCE_VISIT = [40, 3, 12, 35, 8, 45, 2, 60]


def _actor(user: User) -> Actor:
    return Actor(
        id=user.id,
        role=Role(user.role),
        region_id=user.region_id,
        email=user.email,
        full_name=user.full_name,
    )


async def seed_demo(database: Database) -> bool:
    """Create the demo organisation unless its director exists; True when it was created."""
    async with database.session() as session, session.begin():
        if (await session.scalars(select(User.id).where(User.email == DIRECTOR_EMAIL))).first():
            return False
        password_hash = await hash_password(DEMO_PASSWORD)
        regions = {name: Region(name=name) for name in ("East", "North")}
        session.add_all(regions.values())
        users: dict[str, User] = {}
        for email, full_name, role, region in _PEOPLE:
            users[email] = User(
                email=email,
                full_name=full_name,
                role=role,
                region_id=regions[region].id if region else None,
                password_hash=password_hash,
            )
        session.add_all(users.values())
        await session.flush()

        now = utcnow()
        for index, (email, name, industry, source, phone, contact, title) in enumerate(_CUSTOMERS):
            owner = _actor(users[email])
            session.info["actor_id"] = owner.id
            customer = await customers.create_customer(
                session,
                owner,
                CustomerCreate(
                    name=name,
                    industry=industry,
                    source=source,
                    phone=phone,  # type: ignore[arg-type]
                    needs="Replacement of ageing equipment; budget review next quarter.",
                ),
            )
            await contacts.create_contact(
                session,
                owner,
                customer.id,
                ContactCreate(name=contact, title=title, phone=phone, is_primary=True),
            )
            # Some customers were last contacted long ago, so the overdue list is not empty.
            await follow_ups.create_follow_up(
                session,
                owner,
                FollowUpCreate(
                    customer_id=customer.id,
                    kind=FollowUpKind.VISIT,
                    status=FollowUpStatus.DONE,
                    occurred_at=now - timedelta(days=_DAYS_SINCE_VISIT[index]),
                    summary="Introduced our product line.",
                    outcome="Interested; asked for a quote.",
                ),
            )
            await follow_ups.create_follow_up(
                session,
                owner,
                FollowUpCreate(
                    customer_id=customer.id,
                    kind=FollowUpKind.CALL,
                    status=FollowUpStatus.PLANNED,
                    due_at=now + timedelta(days=index - 3),
                    summary="Call about the quote.",
                ),
            )
        await _seed_complaints(session, users, now)
        await _seed_contracts(session, users)
        await _seed_targets(session, users, regions)
        session.info.pop("actor_id", None)
    return True


async def _seed_targets(
    session: AsyncSession, users: dict[str, User], regions: dict[str, Region]
) -> None:
    """This quarter's targets (director: company and regions; managers: their reps) and
    market sizes, so every performance figure has something to compare with."""
    quarter = period_containing(department.today(), parse_period("2000-Q1")).label
    director = _actor(users[DIRECTOR_EMAIL])
    session.info["actor_id"] = director.id
    plans = [
        (director, TargetScope.COMPANY, None, "2000000.00", "1500000.00"),
        (director, TargetScope.REGION, regions["East"].id, "1200000.00", "900000.00"),
        (director, TargetScope.REGION, regions["North"].id, "800000.00", "600000.00"),
    ]
    for email in ("east.rep1@example.com", "east.rep2@example.com", "north.rep1@example.com"):
        rep = users[email]
        manager = (
            "east.manager@example.com"
            if email.startswith("east")
            else ("north.manager@example.com")
        )
        plans.append((_actor(users[manager]), TargetScope.REP, rep.id, "500000.00", "350000.00"))
    for actor, scope, scope_id, revenue, collected in plans:
        session.info["actor_id"] = actor.id
        for metric, value in (
            (Metric.SIGNED_REVENUE, revenue),
            (Metric.COLLECTED_PAYMENTS, collected),
        ):
            await targets.create_target(
                session,
                actor,
                TargetCreate(
                    period=quarter,
                    scope=scope,
                    scope_id=scope_id,
                    metric=metric,
                    value=Decimal(value),
                ),
            )
    for name, size in (("East", "12000000.00"), ("North", "9000000.00")):
        await targets.set_market_size(
            session,
            MarketSizeCreate(region_id=regions[name].id, period=quarter, value=Decimal(size)),
        )


# (rep, customer, channel, category, severity, hours since received): one on time, one
# logged late by phone and so breached and escalated at intake.
_COMPLAINTS = [
    ("east.rep1@example.com", "Shanghai Lianhua Trading Co.", "email", "delivery", "medium", 2),
    ("north.rep1@example.com", "Beijing Capital Pharma", "phone", "product_quality", "high", 5),
]


async def _seed_complaints(session: AsyncSession, users: dict[str, User], now: datetime) -> None:
    for email, name, channel, category, severity, hours in _COMPLAINTS:
        rep = _actor(users[email])
        session.info["actor_id"] = rep.id
        customer_id = await session.scalar(select(Customer.id).where(Customer.name == name))
        await complaint_service.create_complaint(
            session,
            rep,
            ComplaintCreate.model_validate(
                {
                    "customer_id": customer_id,
                    "channel": channel,
                    "category": category,
                    "severity": severity,
                    "description": "Two units arrived damaged; the customer wants them replaced.",
                    "received_at": now - timedelta(hours=hours),
                }
            ),
        )


# (customer, pumps, signed): a signed contract collecting its plan, and a large one (above
# the director threshold) waiting for the East manager's review.
_CONTRACTS = [
    ("Shanghai Lianhua Trading Co.", 2, True),
    ("Hangzhou Westlake Instruments", 8, False),
]


async def _seed_contracts(session: AsyncSession, users: dict[str, User]) -> None:
    rep = _actor(users["east.rep1@example.com"])
    manager = _actor(users["east.manager@example.com"])
    session.info["actor_id"] = users[DIRECTOR_EMAIL].id
    pump = await products.create_product(
        session,
        ProductCreate(
            sku="PUMP-200", name="Centrifugal pump 200", unit="piece", list_price=Decimal("85000")
        ),
    )
    today = department.today()
    for name, pumps, signed in _CONTRACTS:
        session.info["actor_id"] = rep.id
        customer_id = await session.scalar(select(Customer.id).where(Customer.name == name))
        assert customer_id is not None
        opp = await opportunities.create_opportunity(
            session,
            rep,
            OpportunityCreate(
                customer_id=customer_id,
                title=f"{pumps} pumps for the new line",
                needs_summary="Replace the ageing pumps of the main line.",
            ),
        )
        for stage in ("contacted", "needs_analysis", "proposal"):
            await opportunities.transition(session, rep, opp.id, stage, {}, None)
        line = QuoteLineInput(product_id=pump.id, quantity=Decimal(pumps))
        quote = await quotes.create_quote(
            session,
            rep,
            opp.id,
            QuoteCreate(lines=[line], payment_terms="30% advance, 30% on delivery, 40% in 60 days"),
        )
        await opportunities.transition(session, rep, opp.id, "negotiation", {}, None)
        for status in ("approved", "sent", "accepted"):
            await quotes.transition(session, rep, quote.id, status, {}, None)
        await opportunities.transition(session, rep, opp.id, "won", {}, None)
        contract = await contract_service.create_contract(
            session,
            rep,
            ContractCreate(opportunity_id=opp.id, warranty="Two years, parts and labour"),
        )
        part = (contract.amount * Decimal("0.3")).quantize(CENT)
        # The advance is paid, the second part is overdue, the balance falls due later. A
        # plan is made with dates to come (a past one is refused); the demo's history then
        # moves the first two back, as if the plan had been made weeks ago.
        plan = [
            InstallmentCreate(due_date=today, amount=part),
            InstallmentCreate(due_date=today, amount=part),
            InstallmentCreate(
                due_date=today + timedelta(days=60), amount=contract.amount - 2 * part
            ),
        ]
        await collections.replace_installments(session, rep, contract.id, plan, None)
        made = await session.scalars(
            select(Installment).where(
                Installment.contract_id == contract.id, Installment.position < 2
            )
        )
        for installment in made:
            installment.due_date = today - timedelta(days=20 if installment.position == 0 else 5)
        await session.flush()
        await contract_workflow.transition(session, rep, contract.id, "under_review", {}, None)
        if not signed:
            continue
        session.info["actor_id"] = manager.id
        note = {"note": "Standard terms."}
        await contract_workflow.transition(session, manager, contract.id, "approved", note, None)
        session.info["actor_id"] = rep.id
        await contract_workflow.transition(session, rep, contract.id, "signed", {}, None)
        await collections.record_payment(
            session,
            rep,
            contract.id,
            PaymentCreate(
                amount=part,
                # Signed today: no payment is dated before the signature.
                received_on=today,
                method="bank_transfer",
                reference="DEMO-ADVANCE",
            ),
        )
        await deliveries.create_delivery(
            session,
            rep,
            contract.id,
            DeliveryCreate(description=f"{pumps} centrifugal pumps", planned_date=today),
        )
