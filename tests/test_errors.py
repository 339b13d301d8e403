"""Every error is an RFC 9457 problem document, and a refused request changes nothing."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlmodel import SQLModel

from app.config import get_settings
from app.db import Database
from app.deps import SessionDep
from app.logging import JsonLineFormatter
from app.main import create_app
from app.models.people import Region
from tests.factories import Org, make_customer, make_org, problem

CUSTOMERS = "/api/v1/customers"
HUGE = "x" * 10_000


async def table_counts(database: Database) -> dict[str, int]:
    """Rows per table: a refused request must leave every one of them as it was."""
    async with database.session(write=False) as session:
        return {
            table.name: (
                await session.execute(select(func.count()).select_from(table))
            ).scalar_one()
            for table in SQLModel.metadata.sorted_tables
        }


def assert_validation_problem(response: httpx.Response, status: int = 422) -> dict[str, Any]:
    body = problem(response, status, "validation_error" if status == 422 else "bad_request")
    assert set(body) >= {"type", "title", "status", "detail", "code"}
    assert body["title"] and body["detail"]
    assert body["errors"], body
    for error in body["errors"]:
        assert set(error) == {"loc", "msg", "type"}, error
        assert isinstance(error["loc"], list) and error["msg"] and error["type"]
    return body


@pytest.fixture
async def org(database: Database) -> Org:
    return await make_org(database)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": 123}, ["body", "name"]),
        ({"name": ["Acme"]}, ["body", "name"]),
        ({"name": None}, ["body", "name"]),
        ({"name": {"first": "Acme"}}, ["body", "name"]),
        ({"name": "Acme", "phone": 5550101}, ["body", "phone"]),
        ({"name": "Acme", "source": "television"}, ["body", "source"]),
        ({"name": "Acme", "email": "not-an-email"}, ["body", "email"]),
        ({"name": "Acme", "owner_id": "not-a-uuid"}, ["body", "owner_id"]),
        ({}, ["body", "name"]),
        ([], ["body"]),
        ("Acme", ["body"]),
    ],
)
async def test_wrong_types_are_field_errors(
    client: httpx.AsyncClient, database: Database, org: Org, body: Any, loc: list[str]
) -> None:
    before = await table_counts(database)
    response = await client.post(CUSTOMERS, json=body, headers=org.east_rep1.headers)
    problem_body = assert_validation_problem(response)
    assert loc in [e["loc"] for e in problem_body["errors"]]
    assert await table_counts(database) == before


@pytest.mark.parametrize("field", ["colour", "id", "version", "region_id", "status", "created_at"])
async def test_unknown_and_read_only_fields_are_refused_on_create(
    client: httpx.AsyncClient, database: Database, org: Org, field: str
) -> None:
    before = await table_counts(database)
    body = {"name": "Acme", field: "x"}
    response = await client.post(CUSTOMERS, json=body, headers=org.east_rep1.headers)
    errors = assert_validation_problem(response)["errors"]
    assert ["body", field] in [e["loc"] for e in errors]
    assert await table_counts(database) == before


@pytest.mark.parametrize(
    "changes",
    [
        {"colour": "red"},
        {"version": 7},
        {"owner_id": "00000000-0000-0000-0000-000000000001"},
        {"region_id": "00000000-0000-0000-0000-000000000001"},
        {"status": "lost"},
        {"classification": "A"},
        {"id": "00000000-0000-0000-0000-000000000001"},
        {"updated_at": "2026-07-01T08:00:00Z"},
        {"name": 42},
        {"name": ""},
        {"name": HUGE},
        {"needs": HUGE},
    ],
)
async def test_bad_patches_change_nothing(
    client: httpx.AsyncClient, database: Database, org: Org, changes: dict[str, Any]
) -> None:
    customer = await make_customer(database, org.east_rep1, name="Steady Co")
    url = f"{CUSTOMERS}/{customer.id}"
    before = await table_counts(database)
    response = await client.patch(url, json=changes, headers=org.east_rep1.headers)
    assert_validation_problem(response)
    assert await table_counts(database) == before
    stored = (await client.get(url, headers=org.east_rep1.headers)).json()
    assert (stored["name"], stored["version"], stored["needs"]) == ("Steady Co", 1, None)
    assert stored["owner_id"] == str(org.east_rep1.id)


@pytest.mark.parametrize("field", ["name", "industry", "address", "phone", "email", "needs"])
async def test_huge_strings_are_refused(
    client: httpx.AsyncClient, database: Database, org: Org, field: str
) -> None:
    before = await table_counts(database)
    body = {"name": "Acme", field: HUGE}
    response = await client.post(CUSTOMERS, json=body, headers=org.east_rep1.headers)
    errors = assert_validation_problem(response)["errors"]
    assert ["body", field] in [e["loc"] for e in errors]
    # The error describes the value without echoing 10k characters back.
    assert len(response.content) < 5_000
    assert await table_counts(database) == before


@pytest.mark.parametrize("raw", ['{"name": ', "{name: 'Acme'}", '{"name": "Acme",}', "\x00\x01"])
async def test_malformed_json_is_bad_request(
    client: httpx.AsyncClient, database: Database, org: Org, raw: str
) -> None:
    before = await table_counts(database)
    headers = {**org.east_rep1.headers, "Content-Type": "application/json"}
    response = await client.post(CUSTOMERS, content=raw, headers=headers)
    body = problem(response, 400, "bad_request")
    assert body["detail"] and body["title"] == "Bad Request"
    assert await table_counts(database) == before


async def test_malformed_json_patch_is_bad_request(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    headers = {**org.east_rep1.headers, "Content-Type": "application/json"}
    response = await client.patch(f"{CUSTOMERS}/{customer.id}", content="{", headers=headers)
    problem(response, 400, "bad_request")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_wrong_content_type_is_a_client_error(
    client: httpx.AsyncClient, database: Database, org: Org, content_type: str
) -> None:
    before = await table_counts(database)
    headers = {**org.east_rep1.headers, "Content-Type": content_type}
    response = await client.post(CUSTOMERS, content='{"name": "Acme"}', headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert body["status"] == response.status_code
    assert await table_counts(database) == before


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "0000-0000"])
async def test_bad_uuid_in_path_is_422(
    client: httpx.AsyncClient, database: Database, org: Org, method: str, bad_id: str
) -> None:
    await make_customer(database, org.east_rep1)
    before = await table_counts(database)
    kwargs: dict[str, Any] = {"json": {"name": "New"}} if method == "PATCH" else {}
    response = await client.request(
        method, f"{CUSTOMERS}/{bad_id}", headers=org.east_manager.headers, **kwargs
    )
    errors = assert_validation_problem(response)["errors"]
    assert ["path", "customer_id"] in [e["loc"] for e in errors]
    assert await table_counts(database) == before


async def test_unknown_but_well_formed_id_is_404(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.get(f"{CUSTOMERS}/{uuid.uuid4()}", headers=org.east_rep1.headers)
    problem(response, 404, "not_found")


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "eyJub3QiOiJhIGN1cnNvciJ9", "W10"])
async def test_bad_cursor_is_bad_request(client: httpx.AsyncClient, org: Org, cursor: str) -> None:
    response = await client.get(CUSTOMERS, params={"cursor": cursor}, headers=org.east_rep1.headers)
    problem(response, 400, "bad_request")


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "201"}, {"limit": "-1"}, {"limit": "ten"}, {"sort": "colour"}],
)
async def test_bad_list_parameters_are_422(
    client: httpx.AsyncClient, org: Org, params: dict[str, str]
) -> None:
    response = await client.get(CUSTOMERS, params=params, headers=org.east_rep1.headers)
    errors = assert_validation_problem(response)["errors"]
    assert ["query", next(iter(params))] in [e["loc"] for e in errors]


@pytest.mark.parametrize("limit", ["1", "200"])
async def test_limit_bounds_are_inclusive(client: httpx.AsyncClient, org: Org, limit: str) -> None:
    response = await client.get(CUSTOMERS, params={"limit": limit}, headers=org.east_rep1.headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/nowhere", "/api/v2/customers"])
async def test_unknown_route_is_404_problem(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    problem(response, 404, "not_found")
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (CUSTOMERS + "/", 200),  # redirected to the route without the slash
        ("/api/v1/customers-and-more", 404),  # the prefix alone is no match
        ("/api/v1/performance/summary", 200),  # a route near the end of the list
        ("/api/v1/approvals", 200),  # another domain's list
    ],
)
async def test_routes_are_found_by_their_whole_path(
    client: httpx.AsyncClient, org: Org, path: str, status: int
) -> None:
    response = await client.get(path, headers=org.director.headers, follow_redirects=True)
    assert response.status_code == status, response.text


async def test_routes_are_found_under_a_root_path(
    app: FastAPI, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    transport = httpx.ASGITransport(app=app, root_path="/crm")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as mounted:
        response = await mounted.get("/crm" + CUSTOMERS, headers=org.east_rep1.headers)
        assert response.status_code == 200, response.text
        one = await mounted.get(f"/crm{CUSTOMERS}/{customer.id}", headers=org.east_rep1.headers)
        assert one.status_code == 200 and one.json()["id"] == str(customer.id)
        missing = await mounted.get("/crm/api/v1/nothing", headers=org.east_rep1.headers)
        problem(missing, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", CUSTOMERS), ("DELETE", CUSTOMERS), ("POST", "/healthz"), ("PATCH", "/metrics")],
)
async def test_wrong_method_is_405_problem(
    client: httpx.AsyncClient, org: Org, method: str, path: str
) -> None:
    response = await client.request(method, path, headers=org.east_rep1.headers)
    problem(response, 405, "method_not_allowed")
    assert response.headers["allow"]


@pytest.fixture
async def failing_client(database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh app with two routes that fail unexpectedly; the shared app stays untouched."""
    app: FastAPI = create_app(get_settings(), database)

    @app.get("/test-only/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 at /srv/app/secret.py line 42")

    @app.post("/test-only/write-then-boom")
    async def write_then_boom(session: SessionDep) -> None:
        session.add(Region(name="Half-written"))
        await session.flush()
        raise KeyError("internal detail")

    @app.post("/test-only/fails-at-commit")
    async def fails_at_commit(session: SessionDep) -> dict[str, bool]:
        # Not flushed here: the duplicate name fails when the route commits, after this
        # function has returned its answer.
        session.add(Region(name="Taken"))
        return {"stored": True}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_a_commit_that_fails_is_an_error_answer_never_a_200(
    failing_client: httpx.AsyncClient, database: Database
) -> None:
    async with database.session() as session, session.begin():
        session.add(Region(name="Taken"))
    response = await failing_client.post("/test-only/fails-at-commit")
    problem(response, 409, "conflict")
    assert "stored" not in response.text
    async with database.session() as session:
        names = (await session.scalars(select(Region.name))).all()
    assert names == ["Taken"]


async def test_unexpected_error_is_a_500_problem_with_correlation_id(
    failing_client: httpx.AsyncClient,
) -> None:
    response = await failing_client.get("/test-only/boom")
    body = problem(response, 500, "internal_error")
    request_id = response.headers["x-request-id"]
    assert body["correlation_id"] == request_id
    assert request_id in body["detail"]
    for leak in ("Traceback", "RuntimeError", "hunter2", "secret.py", 'File "'):
        assert leak not in response.text


async def test_unexpected_error_is_logged_with_its_correlation_id(
    failing_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="salesdesk.errors"):
        response = await failing_client.get("/test-only/boom")
    request_id = response.headers["x-request-id"]
    [record] = [r for r in caplog.records if r.name == "salesdesk.errors"]
    # The log has what the answer leaves out: the exception and its traceback.
    assert getattr(record, "correlation_id", None) == request_id
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


async def test_unexpected_error_keeps_the_callers_request_id(
    failing_client: httpx.AsyncClient,
) -> None:
    request_id = uuid.uuid4().hex
    response = await failing_client.get("/test-only/boom", headers={"X-Request-ID": request_id})
    body = problem(response, 500, "internal_error")
    assert response.headers["x-request-id"] == request_id == body["correlation_id"]


async def test_unexpected_error_rolls_back_the_request(
    failing_client: httpx.AsyncClient, database: Database
) -> None:
    before = await table_counts(database)
    response = await failing_client.post("/test-only/write-then-boom")
    problem(response, 500, "internal_error")
    assert "internal detail" not in response.text
    assert await table_counts(database) == before


async def test_every_answer_carries_a_request_id(client: httpx.AsyncClient, org: Org) -> None:
    ok = await client.get(CUSTOMERS, headers=org.east_rep1.headers)
    refused = await client.get(CUSTOMERS)
    assert ok.headers["x-request-id"] != refused.headers["x-request-id"]
    problem(refused, 401, "unauthorized")


@pytest.mark.parametrize(
    "given", [str(uuid.uuid4()), uuid.uuid4().hex, "0123456789abcdef0123456789abcdef"]
)
async def test_a_callers_request_id_is_kept_whole_in_the_answer_and_the_log(
    client: httpx.AsyncClient, org: Org, caplog: pytest.LogCaptureFixture, given: str
) -> None:
    with caplog.at_level(logging.INFO, logger="salesdesk.access"):
        response = await client.get(
            CUSTOMERS, headers={**org.east_rep1.headers, "X-Request-ID": given}
        )
    assert response.status_code == 200
    assert response.headers.get_list("x-request-id") == [given]
    [line] = [r for r in caplog.records if r.name == "salesdesk.access"]
    assert line.status == 200 and line.route == CUSTOMERS  # type: ignore[attr-defined]
    assert line.correlation_id == given  # type: ignore[attr-defined]


@pytest.mark.parametrize("given", ["", "not-a-uuid", "x" * 300, "1234"])
async def test_a_request_id_that_is_no_uuid_is_replaced(
    client: httpx.AsyncClient, org: Org, given: str
) -> None:
    response = await client.get(CUSTOMERS, headers={**org.east_rep1.headers, "X-Request-ID": given})
    assert response.status_code == 200
    [request_id] = response.headers.get_list("x-request-id")
    assert request_id != given and len(request_id) == 32
    int(request_id, 16)


def test_a_json_log_line_has_the_time_to_the_millisecond_and_the_extra_fields() -> None:
    formatter = JsonLineFormatter()
    plain = logging.Formatter()
    for created in (1_700_000_000.123, 1_700_000_000.987, 1_700_000_001.004):
        record = logging.makeLogRecord(
            {"name": "salesdesk.access", "msg": "GET %s", "args": ("/x",), "created": created}
        )
        record.msecs = (created - int(created)) * 1000
        record.status = 200
        line = json.loads(formatter.format(record))
        assert line["time"] == plain.formatTime(record)
        assert line["message"] == "GET /x" and line["status"] == 200
