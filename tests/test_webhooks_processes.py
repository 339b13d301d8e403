"""Webhook delivery by real processes: a killed server, a receiver that is down for a while,
and two workers sharing one database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Select, func, select

from app.db import Database
from app.models.platform import Event
from app.models.webhooks import WebhookAttempt, WebhookDelivery
from tests.factories import make_org
from tests.test_webhooks_delivery import URL, subscribe
from tests.webhook_receiver import Receiver, wait_for

SALESDESK = Path(sys.executable).with_name("salesdesk")
PROCESS_ENV = {
    "SALESDESK_WEBHOOK_ALLOW_PRIVATE_URLS": "true",
    "SALESDESK_WEBHOOK_RETRY_DELAYS": ",".join(["1"] * 30),
    "SALESDESK_WEBHOOK_POLL_SECONDS": "0.2",
    "SALESDESK_WEBHOOK_TIMEOUT_SECONDS": "2",
    "SALESDESK_SEED_DEMO": "false",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def salesdesk(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``salesdesk <args>`` on the test database; every process is killed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"process-{len(started)}.log").open("wb")
        process = subprocess.Popen(
            [str(SALESDESK), *args],
            env={**os.environ, **PROCESS_ENV},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    from app.config import get_settings

    monkeypatch.setattr(get_settings(), "webhook_allow_private_urls", True)
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


async def _event_ids(database: Database, types: tuple[str, ...]) -> set[str]:
    async with database.session() as session:
        rows = await session.scalars(select(Event.id).where(Event.type.in_(types)))
        return {str(event_id) for event_id in rows}


def _counter(database: Database, stmt: Select[Any], at_least: int) -> Callable[[], Any]:
    async def check() -> bool:
        async with database.session() as session:
            return int(await session.scalar(stmt) or 0) >= at_least

    return check


def _failed_attempts(webhook_id: str) -> Select[Any]:
    return (
        select(func.count())
        .select_from(WebhookAttempt)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
        .where(
            WebhookDelivery.endpoint_id == uuid.UUID(webhook_id),
            WebhookAttempt.error.is_not(None),
        )
    )


def _deliveries_failed_once(webhook_id: str) -> Select[Any]:
    return select(func.count(func.distinct(WebhookAttempt.delivery_id))).where(
        WebhookAttempt.delivery_id.in_(
            select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == uuid.UUID(webhook_id))
        ),
        WebhookAttempt.error.is_not(None),
    )


def _unsettled(webhook_id: str) -> Select[Any]:
    return (
        select(func.count())
        .select_from(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == uuid.UUID(webhook_id),
            WebhookDelivery.status != "succeeded",
        )
    )


async def test_every_event_arrives_after_a_receiver_outage_and_a_killed_server(
    client: httpx.AsyncClient,
    database: Database,
    receiver: Receiver,
    salesdesk: Callable[..., subprocess.Popen[bytes]],
) -> None:
    org = await make_org(database)
    subscribed = ("customer.created", "customer.deleted")
    webhook = await subscribe(client, org.director, receiver, "/in", list(subscribed))
    await receiver.stop()  # down until further notice
    port = str(free_port())
    server = salesdesk("serve", "--port", port)

    rep = org.east_rep1.headers
    ids = []
    for n in range(5):
        created = await client.post("/api/v1/customers", json={"name": f"Early {n}"}, headers=rep)
        ids.append(created.json()["id"])
    # The server's own worker is at it: attempts fail while the receiver is down.
    await wait_for(_counter(database, _failed_attempts(webhook["id"]), 5), 20)

    server.send_signal(signal.SIGKILL)
    server.wait(timeout=10)
    for n in range(5):
        created = await client.post("/api/v1/customers", json={"name": f"Late {n}"}, headers=rep)
        ids.append(created.json()["id"])
    await client.patch(f"/api/v1/customers/{ids[0]}", json={"industry": "steel"}, headers=rep)
    await client.delete(f"/api/v1/customers/{ids[1]}", headers=org.east_manager.headers)
    salesdesk("serve", "--port", port)
    # The restarted server takes up the events recorded while it was dead, and fails too.
    await wait_for(_counter(database, _deliveries_failed_once(webhook["id"]), 11), 20)

    await receiver.start()
    expected = await _event_ids(database, subscribed)
    assert len(expected) == 11
    await wait_for(lambda: expected <= set(receiver.ids()), 20)
    assert receiver.unverified == []
    assert set(receiver.ids()) == expected  # duplicates may come, strangers may not

    async def settled() -> bool:
        async with database.session() as session:
            return not await session.scalar(_unsettled(webhook["id"]))

    await wait_for(settled, 20)
    log = await client.get(
        f"{URL}/{webhook['id']}/deliveries", params={"limit": 50}, headers=org.director.headers
    )
    deliveries = log.json()["items"]
    assert {d["message_id"] for d in deliveries} == expected
    for delivery in deliveries:
        attempts = delivery["attempts"]
        assert attempts[-1]["succeeded"] and attempts[-1]["status_code"] == 200
        assert all(a["error"] for a in attempts[:-1])  # every earlier attempt says why
    assert all(len(d["attempts"]) > 1 for d in deliveries)  # each failed before it arrived


async def test_two_workers_never_send_the_same_attempt_twice(
    client: httpx.AsyncClient,
    database: Database,
    receiver: Receiver,
    salesdesk: Callable[..., subprocess.Popen[bytes]],
) -> None:
    org = await make_org(database)
    webhook = await subscribe(client, org.director, receiver, "/in", ["customer.created"])
    # Each message fails once and then succeeds, so both attempts of every delivery are
    # contended: a double send of either would show as a third receipt.
    receiver.answer = lambda item: 500 if receiver.ids()[item.message_id] == 0 else 200
    rep = org.east_rep1.headers
    for n in range(20):
        await client.post("/api/v1/customers", json={"name": f"Before {n}"}, headers=rep)
    salesdesk("worker")
    salesdesk("worker")
    for n in range(20):
        await client.post("/api/v1/customers", json={"name": f"During {n}"}, headers=rep)
    expected = await _event_ids(database, ("customer.created",))
    assert len(expected) == 40

    async def settled() -> bool:
        async with database.session() as session:
            return not await session.scalar(_unsettled(webhook["id"]))

    await wait_for(lambda: set(receiver.ids()) == expected, 25)
    await wait_for(settled, 10)
    assert receiver.unverified == []
    assert set(receiver.ids().values()) == {2}
    async with database.session() as session:
        rows = (
            await session.execute(
                select(
                    WebhookAttempt.delivery_id, WebhookAttempt.number, WebhookAttempt.status_code
                )
            )
        ).all()
    by_delivery: dict[uuid.UUID, list[tuple[int, int | None]]] = {}
    for delivery_id, number, status in rows:
        by_delivery.setdefault(delivery_id, []).append((number, status))
    assert len(by_delivery) == 40
    assert all(sorted(v) == [(1, 500), (2, 200)] for v in by_delivery.values())
