"""Webhook delivery by the worker, to a real receiver on loopback that checks signatures."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app.config import Settings, get_settings
from app.db import Database
from app.models.platform import Event
from app.models.types import utcnow
from app.models.webhooks import WebhookAttempt, WebhookEndpoint
from app.webhooks.delivery import ABANDONED, DeliveryWorker
from tests.factories import Person, make_org, problem
from tests.webhook_receiver import Receiver

URL = "/api/v1/webhooks"


def worker_settings(**changes: Any) -> Settings:
    return get_settings().model_copy(
        update={
            "webhook_allow_private_urls": True,
            "webhook_retry_delays": "0,0,0",
            "webhook_timeout_seconds": 2.0,
            **changes,
        }
    )


@pytest.fixture
def allow_private() -> Iterator[None]:
    settings = get_settings()
    before = settings.webhook_allow_private_urls
    settings.webhook_allow_private_urls = True
    yield
    settings.webhook_allow_private_urls = before


@pytest.fixture
async def receiver(allow_private: None) -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


async def drain(worker: DeliveryWorker, rounds: int = 60) -> None:
    """Work rounds until nothing is due."""
    for _ in range(rounds):
        if not await worker.run_once():
            return
    raise AssertionError("the worker never ran out of work")


async def subscribe(
    client: httpx.AsyncClient,
    director: Person,
    receiver: Receiver,
    path: str,
    events: list[str],
) -> dict[str, Any]:
    response = await client.post(
        URL, json={"url": receiver.url(path), "events": events}, headers=director.headers
    )
    assert response.status_code == 201, response.text
    receiver.secrets[path] = response.json()["secret"]
    return response.json()


async def log(client: httpx.AsyncClient, director: Person, webhook_id: str) -> list[dict]:
    response = await client.get(f"{URL}/{webhook_id}/deliveries", headers=director.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_each_endpoint_receives_what_it_subscribed_to_and_nothing_else(
    client: httpx.AsyncClient, database: Database, receiver: Receiver
) -> None:
    org = await make_org(database)
    await subscribe(
        client, org.director, receiver, "/some", ["customer.created", "customer.deleted"]
    )
    await subscribe(client, org.director, receiver, "/all", ["*"])
    rep = org.east_rep1.headers
    ids = []
    for name in ("Alpha Ltd", "Beta Ltd", "Gamma Ltd"):
        created = await client.post("/api/v1/customers", json={"name": name}, headers=rep)
        ids.append(created.json()["id"])
    await client.patch(f"/api/v1/customers/{ids[0]}", json={"industry": "steel"}, headers=rep)
    await client.delete(f"/api/v1/customers/{ids[1]}", headers=org.east_manager.headers)

    worker = DeliveryWorker(database, worker_settings())
    try:
        await drain(worker)
    finally:
        await worker.aclose()

    async with database.session() as session:
        events = (await session.scalars(select(Event).order_by(Event.seq))).all()
    wanted = {str(e.id) for e in events if e.type in ("customer.created", "customer.deleted")}
    assert len(wanted) == 4
    assert receiver.unverified == []
    assert set(receiver.ids("/some")) == wanted
    assert set(receiver.ids("/all")) == {str(e.id) for e in events}
    for path in ("/some", "/all"):
        assert set(receiver.ids(path).values()) == {1}  # each once: nothing failed

    by_id = {str(e.id): e for e in events}
    for item in receiver.received:
        event = by_id[item.message_id]
        assert item.payload is not None
        assert item.payload["type"] == event.type
        assert item.payload["data"] == event.data
        assert item.payload["timestamp"].endswith("Z")
        assert item.headers["content-type"] == "application/json"


async def test_failed_attempts_are_retried_with_the_same_id_and_logged(
    client: httpx.AsyncClient, database: Database, receiver: Receiver
) -> None:
    org = await make_org(database)
    webhook = await subscribe(client, org.director, receiver, "/in", ["customer.created"])
    receiver.answer = lambda item: 500 if receiver.ids()[item.message_id] < 2 else 204
    await client.post("/api/v1/customers", json={"name": "Retry Co"}, headers=org.east_rep1.headers)

    worker = DeliveryWorker(database, worker_settings())
    try:
        await drain(worker)
    finally:
        await worker.aclose()

    assert receiver.unverified == []
    assert [r.status for r in receiver.received] == [500, 500, 204]
    assert len({r.message_id for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1  # the same bytes every time
    [delivery] = await log(client, org.director, webhook["id"])
    assert delivery["status"] == "succeeded" and delivery["attempt_count"] == 3
    assert delivery["message_id"] == receiver.received[0].message_id
    attempts = delivery["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["status_code"] for a in attempts] == [500, 500, 204]
    assert [a["succeeded"] for a in attempts] == [False, False, True]
    assert all(a["latency_ms"] is not None and a["finished_at"] for a in attempts)
    assert json.loads(attempts[0]["response_excerpt"]) == {"received": True}
    read = await client.get(f"{URL}/{webhook['id']}", headers=org.director.headers)
    assert read.json()["failing_since"] is None


async def test_a_delivery_gives_up_after_its_delays_and_a_manual_retry_sends_it_again(
    client: httpx.AsyncClient, database: Database, receiver: Receiver
) -> None:
    org = await make_org(database)
    webhook = await subscribe(client, org.director, receiver, "/in", ["customer.created"])
    await receiver.stop()  # down: every attempt is refused
    await client.post("/api/v1/customers", json={"name": "Down Co"}, headers=org.east_rep1.headers)

    worker = DeliveryWorker(database, worker_settings(webhook_retry_delays="0"))
    try:
        await drain(worker)
        [delivery] = await log(client, org.director, webhook["id"])
        assert delivery["status"] == "failed" and delivery["attempt_count"] == 2
        assert all(a["status_code"] is None and a["error"] for a in delivery["attempts"])
        read = await client.get(f"{URL}/{webhook['id']}", headers=org.director.headers)
        assert read.json()["failing_since"] is not None and read.json()["is_active"] is True
        failed = await client.get(
            f"{URL}/{webhook['id']}/deliveries",
            params={"status": "failed"},
            headers=org.director.headers,
        )
        assert [d["id"] for d in failed.json()["items"]] == [delivery["id"]]

        await receiver.start()
        retried = await client.post(
            f"{URL}/{webhook['id']}/deliveries/{delivery['id']}/retry",
            headers=org.director.headers,
        )
        assert retried.status_code == 202, retried.text
        await drain(worker)
    finally:
        await worker.aclose()
    [delivery] = await log(client, org.director, webhook["id"])
    assert delivery["status"] == "succeeded" and delivery["attempt_count"] == 3
    assert [r.message_id for r in receiver.received] == [delivery["message_id"]]


async def test_redirects_are_failures_and_not_followed(
    client: httpx.AsyncClient, database: Database, receiver: Receiver
) -> None:
    org = await make_org(database)
    webhook = await subscribe(client, org.director, receiver, "/in", ["webhook.test"])
    receiver.answer = lambda _: 302
    await client.post(f"{URL}/{webhook['id']}/test", headers=org.director.headers)
    worker = DeliveryWorker(database, worker_settings())
    try:
        await drain(worker)
    finally:
        await worker.aclose()
    assert len(receiver.received) == 1
    [delivery] = await log(client, org.director, webhook["id"])
    assert delivery["status"] == "failed"  # a test message is tried once
    assert delivery["attempts"][0]["status_code"] == 302


async def test_the_test_message_is_signed_and_sent_to_that_endpoint_only(
    client: httpx.AsyncClient, database: Database, receiver: Receiver
) -> None:
    org = await make_org(database)
    one = await subscribe(client, org.director, receiver, "/one", ["*"])
    await subscribe(client, org.director, receiver, "/two", ["*"])
    worker = DeliveryWorker(database, worker_settings())
    try:
        await drain(worker)  # the webhook.created events
        receiver.received.clear()
        await client.post(f"{URL}/{one['id']}/test", headers=org.director.headers)
        await drain(worker)
    finally:
        await worker.aclose()
    [item] = receiver.received
    assert item.verified and item.path == "/one"
    assert item.payload is not None and item.payload["type"] == "webhook.test"
    assert item.payload["data"]["webhook_id"] == one["id"]


async def test_old_and_new_secrets_both_sign_during_the_overlap(
    client: httpx.AsyncClient, database: Database, receiver: Receiver
) -> None:
    org = await make_org(database)
    webhook = await subscribe(client, org.director, receiver, "/in", ["webhook.test"])
    old_secret = receiver.secrets["/in"]
    rotate = f"{URL}/{webhook['id']}/rotate-secret"
    new_secret = (
        await client.post(rotate, json={"overlap_seconds": 600}, headers=org.director.headers)
    ).json()["secret"]
    worker = DeliveryWorker(database, worker_settings())
    try:
        for secret in (old_secret, new_secret):
            receiver.secrets["/in"] = secret
            await client.post(f"{URL}/{webhook['id']}/test", headers=org.director.headers)
            await drain(worker)
        assert [r.verified for r in receiver.received] == [True, True]
        assert len(receiver.received[0].headers["webhook-signature"].split(" ")) == 2

        # Without overlap the old secret stops signing at once.
        newest = (
            await client.post(rotate, json={"overlap_seconds": 0}, headers=org.director.headers)
        ).json()["secret"]
        receiver.secrets["/in"] = new_secret
        await client.post(f"{URL}/{webhook['id']}/test", headers=org.director.headers)
        await drain(worker)
        assert receiver.received[-1].verified is False
        receiver.secrets["/in"] = newest
        await client.post(f"{URL}/{webhook['id']}/test", headers=org.director.headers)
        await drain(worker)
        assert receiver.received[-1].verified is True
    finally:
        await worker.aclose()


async def test_an_endpoint_failing_for_five_days_is_disabled_with_an_event(
    client: httpx.AsyncClient, database: Database, receiver: Receiver
) -> None:
    org = await make_org(database)
    failing = await subscribe(client, org.director, receiver, "/failing", ["customer.created"])
    watcher = await subscribe(client, org.director, receiver, "/watch", ["webhook.disabled"])
    receiver.answer = lambda item: 500 if item.path == "/failing" else 200
    async with database.session() as session, session.begin():
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == uuid.UUID(failing["id"]))
            .values(failing_since=utcnow() - timedelta(days=5, minutes=1))
        )
    await client.post("/api/v1/customers", json={"name": "Gone Co"}, headers=org.east_rep1.headers)
    worker = DeliveryWorker(database, worker_settings())
    try:
        await drain(worker)
    finally:
        await worker.aclose()

    read = (await client.get(f"{URL}/{failing['id']}", headers=org.director.headers)).json()
    assert read["is_active"] is False and "5 days" in read["disabled_reason"]
    # Disabled after its first failure: no more attempts were made.
    assert [r.path for r in receiver.received if r.path == "/failing"] == ["/failing"]
    [notice] = [r for r in receiver.received if r.path == "/watch"]
    assert notice.verified and notice.payload is not None
    assert notice.payload["type"] == "webhook.disabled"
    assert notice.payload["data"]["id"] == failing["id"]
    assert watcher["id"] != failing["id"]

    turned_on = await client.patch(
        f"{URL}/{failing['id']}", json={"is_active": True}, headers=org.director.headers
    )
    assert turned_on.json()["failing_since"] is None
    assert turned_on.json()["disabled_reason"] is None


async def test_an_attempt_cut_short_by_a_crash_is_logged_and_retried_after_its_lease(
    client: httpx.AsyncClient, database: Database, receiver: Receiver
) -> None:
    org = await make_org(database)
    webhook = await subscribe(client, org.director, receiver, "/in", ["webhook.test"])
    await client.post(f"{URL}/{webhook['id']}/test", headers=org.director.headers)
    settings = worker_settings(webhook_timeout_seconds=0.2)  # a 1.4 s lease
    crashed, survivor = DeliveryWorker(database, settings), DeliveryWorker(database, settings)
    try:
        assert len(await crashed._claim()) == 1  # claimed, then the process "dies"
        assert await survivor.deliver_due() == 0  # leased: nobody else sends it
        [claimed] = await log(client, org.director, webhook["id"])
        busy = await client.post(
            f"{URL}/{webhook['id']}/deliveries/{claimed['id']}/retry", headers=org.director.headers
        )
        assert problem(busy, 409, "conflict")["reason"] == "delivery_in_progress"
        await asyncio.sleep(1.5)
        assert await survivor.deliver_due() == 1
    finally:
        await crashed.aclose()
        await survivor.aclose()
    assert len(receiver.received) == 1
    [delivery] = await log(client, org.director, webhook["id"])
    first, second = delivery["attempts"]
    assert first["error"] == ABANDONED and first["finished_at"] and first["status_code"] is None
    assert second["status_code"] == 200 and delivery["status"] == "succeeded"
    async with database.session() as session:
        numbers = (await session.scalars(select(WebhookAttempt.number))).all()
    assert sorted(numbers) == [1, 2]


async def test_private_addresses_are_refused_at_send_time_unless_allowed(
    client: httpx.AsyncClient, database: Database, receiver: Receiver
) -> None:
    org = await make_org(database)
    webhook = await subscribe(client, org.director, receiver, "/in", ["webhook.test"])
    await client.post(f"{URL}/{webhook['id']}/test", headers=org.director.headers)
    worker = DeliveryWorker(database, worker_settings(webhook_allow_private_urls=False))
    try:
        await drain(worker)
    finally:
        await worker.aclose()
    assert receiver.received == []
    [delivery] = await log(client, org.director, webhook["id"])
    assert delivery["attempts"][0]["error"].startswith("Refused")
