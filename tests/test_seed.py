"""The demo organisation: created once, and every list a demo user opens is non-empty."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from app.db import Database
from app.models.customers import Customer
from app.seed import DEMO_PASSWORD, seed_demo

LISTS = [
    "customers",
    "follow-ups",
    "opportunities",
    "contracts",
    "complaints",
    "receivables",
    "targets",
    "events",
    "customers?overdue=true",
]


async def _login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_demo_is_seeded_once_and_fills_every_list(
    client: httpx.AsyncClient, database: Database
) -> None:
    assert await seed_demo(database) is True
    async with database.session() as session:
        customers = await session.scalar(select(func.count()).select_from(Customer))
    assert await seed_demo(database) is False
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == customers

    rep = await _login(client, "east.rep1@example.com")
    for path in LISTS:
        body = (await client.get(f"/api/v1/{path}", headers=rep)).json()
        assert body["items"], path
    manager = await _login(client, "east.manager@example.com")
    assert (await client.get("/api/v1/approvals", headers=manager)).json()["items"]
    director = await _login(client, "director@example.com")
    summary = (await client.get("/api/v1/performance/summary", headers=director)).json()
    assert summary["metrics"]["signed_revenue"]["target"] is not None
    assert summary["market_share"] is not None
