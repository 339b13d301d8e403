"""The reports' lane (``app.lanes``): at most ``SALESDESK_REPORT_CONCURRENCY`` reports at
once in a process; the others wait their turn, and one that waits longer than
``SALESDESK_REPORT_WAIT_SECONDS`` is answered 503 with ``Retry-After``.

Each test builds an app with a lane of one place and takes that place itself, so a report
sent meanwhile must wait: nothing here depends on how fast a report runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from app.db import Database
from app.lanes import Lane
from app.main import create_app
from tests.factories import (
    Org,
    client_for,
    make_customer,
    make_org,
    make_settings,
    problem,
    sample,
)

SUMMARY = "/api/v1/performance/summary"
LEADERBOARD = "/api/v1/performance/leaderboard"


def lane_app(database: Database, wait_seconds: float) -> FastAPI:
    return create_app(
        make_settings(report_concurrency=1, report_wait_seconds=wait_seconds), database
    )


async def metric(client: httpx.AsyncClient, name: str) -> float:
    return sample((await client.get("/metrics")).text, name, lane="reports")


async def until_waiting(client: httpx.AsyncClient, count: float) -> None:
    """Wait (at most about five seconds) until ``count`` requests wait in the lane."""
    for _ in range(1000):
        if await metric(client, "salesdesk_lane_waiting") == count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{count} requests never waited in the lane")


async def gone() -> dict[str, Any]:
    """An ASGI ``receive`` of a client that has left."""
    return {"type": "http.disconnect"}


async def test_a_report_waits_for_a_place_while_other_routes_answer(database: Database) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    app = lane_app(database, wait_seconds=30)
    lane: Lane = app.state.report_lane
    async with client_for(app) as client:
        async with lane.place():  # the lane's only place
            waiting_before = await metric(client, "salesdesk_lane_waiting")
            report = asyncio.create_task(client.get(SUMMARY, headers=org.east_manager.headers))
            await until_waiting(client, waiting_before + 1)
            assert not report.done()
            # Everything else is outside the lane: reads, writes, lists answer meanwhile.
            read = await client.get(
                f"/api/v1/customers/{customer.id}", headers=org.east_rep1.headers
            )
            assert read.status_code == 200, read.text
            listed = await client.get("/api/v1/customers", headers=org.east_manager.headers)
            assert [c["id"] for c in listed.json()["items"]] == [str(customer.id)]
            assert not report.done()
        answered = await report
    assert answered.status_code == 200, answered.text
    assert answered.json()["scope"] == "region"


async def test_a_report_that_waits_too_long_is_answered_503(database: Database) -> None:
    org = await make_org(database)
    app = lane_app(database, wait_seconds=0.05)
    lane: Lane = app.state.report_lane
    async with client_for(app) as client:
        refused_before = await metric(client, "salesdesk_lane_refused_total")
        async with lane.place():
            busy = await client.get(LEADERBOARD, headers=org.director.headers)
        body = problem(busy, 503, "unavailable")
        assert "retry" in body["detail"]
        assert busy.headers["retry-after"] == "1"
        assert await metric(client, "salesdesk_lane_refused_total") == refused_before + 1
        assert await metric(client, "salesdesk_lane_waiting") == 0
        # The place is free again: the same request is answered.
        again = await client.get(LEADERBOARD, headers=org.director.headers)
        assert again.status_code == 200, again.text


async def test_a_report_that_fails_gives_its_place_back(database: Database) -> None:
    org: Org = await make_org(database)
    app = lane_app(database, wait_seconds=0.05)
    async with client_for(app) as client:
        outside = await client.get(
            SUMMARY,
            params={"scope": "region", "scope_id": str(org.north.id)},
            headers=org.east_manager.headers,
        )
        problem(outside, 404, "not_found")
        bad = await client.get(SUMMARY, params={"period": "2026-Q9"}, headers=org.director.headers)
        problem(bad, 422, "validation_error")
        # With the lane's one place kept by either, this would wait 50 ms and be refused.
        fine = await client.get(SUMMARY, headers=org.director.headers)
        assert fine.status_code == 200, fine.text
        assert await metric(client, "salesdesk_lane_running") == 0


def asgi_get(path: str, token: str) -> dict[str, Any]:
    """The ASGI scope of an authenticated GET, as uvicorn would pass it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }


async def test_a_report_whose_client_left_while_it_waited_is_not_run(
    database: Database,
) -> None:
    org = await make_org(database)
    app = lane_app(database, wait_seconds=30)
    # Every wait counts as long enough to ask (the app's lane asks after a second's wait).
    lane = app.state.report_lane = Lane("reports", 1, wait_seconds=30, check_client_after=0)
    still_there = asyncio.Event()  # never set: a client waiting for its answer

    async def present() -> dict[str, Any]:
        if not sent_body:
            sent_body.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await still_there.wait()
        return {"type": "http.disconnect"}

    sent_body: list[bool] = []
    answers: dict[str, list[dict[str, Any]]] = {"gone": [], "present": []}

    def sender(name: str) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def send(message: dict[str, Any]) -> None:
            answers[name].append(message)

        return send

    async with client_for(app) as client:
        abandoned_before = await metric(client, "salesdesk_lane_abandoned_total")
        waiting_before = await metric(client, "salesdesk_lane_waiting")
        scope = asgi_get(SUMMARY, org.east_manager.token)
        async with lane.place():
            calls = [
                asyncio.create_task(app(dict(scope), gone, sender("gone"))),
                asyncio.create_task(app(dict(scope), present, sender("present"))),
            ]
            await until_waiting(client, waiting_before + 2)
        await asyncio.gather(*calls)
        assert await metric(client, "salesdesk_lane_abandoned_total") == abandoned_before + 1
    # The client that left got nothing run for it; the one still there got its summary.
    assert answers["gone"][0]["status"] == 499
    assert answers["present"][0]["status"] == 200
    assert b'"scope":"region"' in b"".join(m.get("body", b"") for m in answers["present"])


async def test_after_a_short_wait_the_client_is_not_asked(database: Database) -> None:
    """Asking costs a read of the connection, too much to pay after every wait in a storm:
    a report that waited less than ``check_client_after`` runs without asking."""
    org = await make_org(database)
    app = lane_app(database, wait_seconds=30)
    lane = app.state.report_lane = Lane("reports", 1, wait_seconds=30, check_client_after=60)
    answers: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        answers.append(message)

    async with client_for(app) as client:
        waiting_before = await metric(client, "salesdesk_lane_waiting")
        async with lane.place():
            call = asyncio.create_task(app(asgi_get(SUMMARY, org.east_manager.token), gone, send))
            await until_waiting(client, waiting_before + 1)
        await call
    assert answers[0]["status"] == 200


async def test_waiting_reports_go_in_order_of_arrival() -> None:
    lane = Lane("test", 1, wait_seconds=5)
    entered: list[int] = []

    async def report(number: int) -> None:
        async with lane.place():
            entered.append(number)
            await asyncio.sleep(0)

    async with lane.place():
        tasks = []
        for number in range(5):
            tasks.append(asyncio.create_task(report(number)))
            await asyncio.sleep(0)  # each in the queue before the next arrives
        await asyncio.sleep(0.01)
        assert entered == []
    await asyncio.gather(*tasks)
    assert entered == [0, 1, 2, 3, 4]


async def test_a_lane_of_size_zero_has_no_bound() -> None:
    lane = Lane("test", 0, wait_seconds=0.01)
    async with AsyncExitStack() as stack:
        for _ in range(100):
            await stack.enter_async_context(lane.place())


def test_the_lane_size_cannot_be_negative() -> None:
    with pytest.raises(ValidationError, match="report_concurrency"):
        make_settings(report_concurrency=-1)
    with pytest.raises(ValidationError, match="report_wait_seconds"):
        make_settings(report_wait_seconds=0)
