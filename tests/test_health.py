"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from app.config import get_settings
from app.db import Database, create_engine
from app.main import create_app
from app.migrations import alembic_config
from tests.factories import make_org, problem, sample


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reads_the_database(client: httpx.AsyncClient, database: Database) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.fixture
async def unreachable_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose database cannot be opened: a SQLite file in a folder that does not exist."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'nowhere.db'}"
    database = Database(create_engine(get_settings(), url))
    app = create_app(get_settings(), database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    await database.dispose()


async def test_readyz_answers_503_when_the_database_is_down(
    unreachable_client: httpx.AsyncClient,
) -> None:
    response = await unreachable_client.get("/readyz")
    body = problem(response, 503, "unavailable")
    assert response.headers["retry-after"]
    assert body["correlation_id"] == response.headers["x-request-id"]
    # The process itself is fine: liveness does not depend on the database.
    assert (await unreachable_client.get("/healthz")).status_code == 200


async def test_api_answers_503_when_the_database_is_down(
    unreachable_client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    response = await unreachable_client.get("/api/v1/customers", headers=org.director.headers)
    problem(response, 503, "unavailable")
    assert "sqlite" not in response.text.lower()


async def test_metrics_count_requests_by_route(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    for _ in range(3):
        await client.get("/healthz")
    await client.get("/api/v1/customers")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert "# TYPE salesdesk_http_requests_total counter" in after
    assert "salesdesk_http_request_duration_seconds_bucket" in after

    def grew(**labels: str) -> float:
        name = "salesdesk_http_requests_total"
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew(method="GET", route="/healthz", status="200") == 3
    assert grew(method="GET", route="/api/v1/customers", status="401") == 1


async def test_metrics_label_by_template_not_by_path(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    customer = await client.post(
        "/api/v1/customers", json={"name": "Metered Co"}, headers=org.east_rep1.headers
    )
    customer_id = customer.json()["id"]
    await client.get(f"/api/v1/customers/{customer_id}", headers=org.east_rep1.headers)
    await client.get("/no/such/page/4f1c2b")
    metrics = (await client.get("/metrics")).text
    # Ids and unknown paths would make one time series per request.
    assert customer_id not in metrics and "4f1c2b" not in metrics
    assert 'route="/api/v1/customers/{customer_id}"' in metrics
    assert 'route="unmatched"' in metrics


def test_native_telemetry_is_off_unless_asked_for() -> None:
    off = create_app(get_settings().model_copy(update={"otel_enabled": False}))
    on = create_app(get_settings().model_copy(update={"otel_enabled": True}))
    assert off._telemetry["tracing"] is False and off._telemetry["metrics"] is False
    assert on._telemetry["tracing"] is True and on._telemetry["metrics"] is True


async def test_readyz_answers_503_on_a_database_never_migrated(
    client: httpx.AsyncClient, database: Database
) -> None:
    # The migrations' own table set aside for the test: as before `salesdesk migrate`.
    async with database.engine.begin() as connection:
        await connection.execute(text("ALTER TABLE alembic_version RENAME TO alembic_version_away"))
    try:
        response = await client.get("/readyz")
    finally:
        async with database.engine.begin() as connection:
            await connection.execute(
                text("ALTER TABLE alembic_version_away RENAME TO alembic_version")
            )
    body = problem(response, 503, "unavailable")
    assert "not migrated" in body["detail"] and "salesdesk migrate" in body["detail"]
    assert response.headers["retry-after"]
    assert (await client.get("/readyz")).status_code == 200


async def test_readyz_answers_503_on_a_database_behind_head(
    client: httpx.AsyncClient, database: Database
) -> None:
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    update = "UPDATE alembic_version SET version_num = :to"
    async with database.engine.begin() as connection:
        await connection.execute(text(update), {"to": previous})
    try:
        response = await client.get("/readyz")
    finally:
        async with database.engine.begin() as connection:
            await connection.execute(text(update), {"to": head})
    body = problem(response, 503, "unavailable")
    assert previous in body["detail"] and head in body["detail"]
    assert "salesdesk migrate" in body["detail"]
    assert (await client.get("/readyz")).status_code == 200
