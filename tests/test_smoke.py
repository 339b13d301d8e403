"""The walking skeleton: log in, list, create, read back."""

from __future__ import annotations

import httpx

from app.db import Database
from app.models.customers import CustomerRead
from app.models.people import Role
from tests.factories import etag_of, make_org, make_region, make_user, problem


async def test_login_and_customer_round_trip(client: httpx.AsyncClient, database: Database) -> None:
    region = await make_region(database)
    await make_user(database, Role.REP, region, password="s3cret-pass", email="rep@example.com")
    response = await client.post(
        "/api/v1/auth/token", data={"username": "rep@example.com", "password": "s3cret-pass"}
    )
    assert response.status_code == 200, response.text
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

    created = await client.post("/api/v1/customers", json={"name": "Acme Trading"}, headers=headers)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/api/v1/customers/{created.json()['id']}"
    assert created.headers["etag"] == etag_of(CustomerRead, created)
    assert created.json()["version"] == 1

    listed = await client.get("/api/v1/customers", headers=headers)
    assert [c["name"] for c in listed.json()["items"]] == ["Acme Trading"]


async def test_other_rep_sees_404(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    created = await client.post(
        "/api/v1/customers", json={"name": "Mine Co"}, headers=org.east_rep1.headers
    )
    customer_id = created.json()["id"]
    response = await client.get(f"/api/v1/customers/{customer_id}", headers=org.east_rep2.headers)
    problem(response, 404, "not_found")
