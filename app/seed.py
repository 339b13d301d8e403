"""The demo organisation of api.md: two regions, a director, managers, reps and their
customers, contacts and follow-ups. Written through the services, so it has events and an
audit trail like real data. Running it twice changes nothing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.db import Database
from app.models.customers import (
    ContactCreate,
    CustomerCreate,
    FollowUpCreate,
    FollowUpKind,
    FollowUpStatus,
)
from app.models.people import Region, Role, User
from app.models.types import utcnow
from app.permissions import Actor
from app.security import hash_password
from app.services import contacts, customers, follow_ups

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
    return Actor(id=user.id, role=Role(user.role), region_id=user.region_id, email=user.email)


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
        session.info.pop("actor_id", None)
    return True
