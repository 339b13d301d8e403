"""Money in a body is a decimal string: a JSON number (a float to most clients) is a 422
naming the field, and changes nothing."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from app.db import Database
from app.models.pipeline import Product
from tests.factories import make_org, problem

API = "/api/v1"


@pytest.mark.parametrize("price", [0.1, 1000, 1000.0, 1e3])
async def test_money_as_a_json_number_is_refused(
    client: httpx.AsyncClient, database: Database, price: float
) -> None:
    org = await make_org(database)
    body = {"sku": "PUMP-1", "name": "Pump", "unit": "piece", "list_price": price}
    response = await client.post(f"{API}/products", json=body, headers=org.director.headers)
    errors = problem(response, 422, "validation_error")["errors"]
    assert [error["loc"] for error in errors] == [["body", "list_price"]]
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(Product)) == 0

    body["list_price"] = "1000.00"
    created = await client.post(f"{API}/products", json=body, headers=org.director.headers)
    assert (created.status_code, created.json()["list_price"]) == (201, "1000.00")
