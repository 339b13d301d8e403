"""Unknown query parameters: every /api/v1 operation takes only the query parameters it
documents (its dependencies' included); any other is a 422 naming it, and changes nothing."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Query
from sqlalchemy import func, select

from app.db import Database
from app.errors import install_error_handlers
from app.models.customers import Customer
from app.routers.common import ApiRoute, api_router
from tests.factories import make_org, problem

API = "/api/v1"


def unknown(response: httpx.Response) -> list[tuple[list[str], str]]:
    body = problem(response, 422, "validation_error")
    return [(error["loc"], error["type"]) for error in body["errors"]]


async def test_a_mistyped_filter_is_refused_not_ignored(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    response = await client.get(
        f"{API}/opportunities", params={"overdue": "true"}, headers=org.director.headers
    )
    assert unknown(response) == [(["query", "overdue"], "extra_forbidden")]
    # The filter it has is taken.
    listed = await client.get(
        f"{API}/opportunities", params={"stage": "lead"}, headers=org.director.headers
    )
    assert listed.status_code == 200, listed.text


async def test_each_unknown_parameter_is_named_once_and_known_ones_not_at_all(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    response = await client.get(
        f"{API}/follow-ups?limit=5&Limit=1&from=2026-01-01T00:00:00Z&colour=&colour=red&from_=x",
        headers=org.east_rep1.headers,
    )
    assert unknown(response) == [
        (["query", "Limit"], "extra_forbidden"),
        (["query", "colour"], "extra_forbidden"),
        (["query", "from_"], "extra_forbidden"),
    ]
    # The alias is the name a client writes: "from" is a parameter, "from_" is not.
    fine = await client.get(
        f"{API}/follow-ups?limit=5&from=2026-01-01T00:00:00Z", headers=org.east_rep1.headers
    )
    assert fine.status_code == 200, fine.text


async def test_a_write_with_an_unknown_parameter_changes_nothing(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    response = await client.post(
        f"{API}/customers?dry_run=true",
        json={"name": "Never Made Ltd"},
        headers=org.east_rep1.headers,
    )
    assert unknown(response) == [(["query", "dry_run"], "extra_forbidden")]
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 0


async def test_another_method_is_still_405(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    response = await client.put(f"{API}/customers?bogus=1", headers=org.director.headers)
    problem(response, 405, "method_not_allowed")


async def test_every_api_operation_refuses_an_unknown_parameter(
    client: httpx.AsyncClient, app: FastAPI, database: Database
) -> None:
    org = await make_org(database)
    seen = 0
    for route in app.routes:
        if not (isinstance(route, ApiRoute) and route.path.startswith(API)):
            continue
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), route.path)
        for method in route.methods:
            response = await client.request(
                method, f"{path}?no_such_parameter=1", headers=org.director.headers
            )
            assert unknown(response) == [(["query", "no_such_parameter"], "extra_forbidden")], (
                method,
                route.path,
            )
            assert 422 in route.responses, (method, route.path)
            seen += 1
    assert seen > 100


def _tenant(tenant: Annotated[str | None, Query()] = None) -> str | None:
    return tenant


async def test_a_dependencys_parameters_are_the_operations_too(database: Database) -> None:
    router = api_router("/probe", "probe")

    @router.get("")
    async def probe_read(
        tenant: Annotated[str | None, Depends(_tenant)], page: int = 1
    ) -> dict[str, str | int | None]:
        return {"tenant": tenant, "page": page}

    probe = FastAPI()
    probe.state.database = database
    install_error_handlers(probe)
    probe.include_router(router)
    transport = httpx.ASGITransport(app=probe)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        ok = await client.get(f"{API}/probe?tenant=east&page=2")
        assert ok.json() == {"tenant": "east", "page": 2}
        assert (await client.get(f"{API}/probe")).status_code == 200
        refused = await client.get(f"{API}/probe?tenant=east&tenantt=x")
        assert unknown(refused) == [(["query", "tenantt"], "extra_forbidden")]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_outside_the_api_nothing_changes(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(f"{path}?probe=1")).status_code == 200
