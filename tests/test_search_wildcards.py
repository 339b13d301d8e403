"""Searches: ``q`` is literal text. LIKE's wildcards (``%``, ``_``) and its escape character
match only themselves, in every list that searches, on both databases."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from app.db import Database
from app.models.people import User
from app.models.pipeline import Opportunity, Product
from tests.contract_helpers import make_contract
from tests.factories import Person, make_customer, make_org
from tests.pipeline_helpers import make_opportunity

API = "/api/v1"
# One name per character LIKE treats specially (the two wildcards, SQLAlchemy's escape
# character "/" and the backslash other escapes use), and one with none of them.
NAMES = ["Cotton 100% Ltd", "Under_score Ltd", "Slash/Works Ltd", "Back\\slash Ltd", "Plain Ltd"]


async def _found(
    client: httpx.AsyncClient, person: Person, path: str, q: str, field: str
) -> set[str]:
    response = await client.get(f"{API}/{path}", params={"q": q}, headers=person.headers)
    assert response.status_code == 200, response.text
    return {item[field] for item in response.json()["items"]}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("%", {"Cotton 100% Ltd"}),
        ("_", {"Under_score Ltd"}),
        ("/", {"Slash/Works Ltd"}),
        ("\\", {"Back\\slash Ltd"}),
        ("0%", {"Cotton 100% Ltd"}),
        ("%%", set()),
        ("r_s", {"Under_score Ltd"}),
        ("ltd", set(NAMES)),
    ],
)
async def test_wildcards_are_literal_in_every_search(
    client: httpx.AsyncClient, database: Database, q: str, expected: set[str]
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    for name in NAMES:
        await make_customer(database, rep, name=name)
        opp = await make_opportunity(database, rep)
        await make_user_named(database, name)
        async with database.session() as session, session.begin():
            (await session.get_one(Opportunity, opp.id)).title = name
            session.add(
                Product(sku=f"SKU {name}", name=name, unit="piece", list_price=Decimal("1.00"))
            )

    def only_named(found: set[str]) -> set[str]:
        return found & set(NAMES)

    assert only_named(await _found(client, rep, "customers", q, "name")) == expected
    assert only_named(await _found(client, rep, "opportunities", q, "title")) == expected
    assert await _found(client, rep, "products", q, "name") == expected
    assert only_named(await _found(client, org.director, "users", q, "full_name")) == expected


async def make_user_named(database: Database, name: str) -> None:
    async with database.session() as session, session.begin():
        email = f"{abs(hash(name))}@example.com"
        session.add(User(email=email, full_name=name, role="rep", is_active=True))


@pytest.mark.parametrize("q", ["%", "_", "HT_", "H%"])
async def test_contract_numbers_match_wildcards_literally(
    client: httpx.AsyncClient, database: Database, q: str
) -> None:
    org = await make_org(database)
    contract = await make_contract(database, org.east_rep1)
    assert contract.number.startswith("HT-")
    assert await _found(client, org.east_rep1, "contracts", q, "number") == set()
    assert await _found(client, org.east_rep1, "contracts", "HT-", "number") == {contract.number}
