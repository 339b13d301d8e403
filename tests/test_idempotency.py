"""``Idempotency-Key`` on POST: one record per key, retries replay the first answer."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from app.db import Database
from app.idempotency import purge_expired
from app.models.customers import Customer, FollowUp
from app.models.platform import IdempotencyRecord
from app.models.types import utcnow
from tests.factories import Org, Person, make_customer, make_org, problem

CUSTOMERS = "/api/v1/customers"
FOLLOW_UPS = "/api/v1/follow-ups"


@pytest.fixture
async def org(database: Database) -> Org:
    return await make_org(database)


def keyed(person: Person, key: str) -> dict[str, str]:
    return {**person.headers, "Idempotency-Key": key}


async def count(database: Database, model: Any) -> int:
    async with database.session(write=False) as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def test_retry_replays_the_first_answer(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    headers = keyed(org.east_rep1, "create-acme-1")
    first = await client.post(CUSTOMERS, json={"name": "Acme"}, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers

    second = await client.post(CUSTOMERS, json={"name": "Acme"}, headers=headers)
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.content == first.content
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["content-type"] == first.headers["content-type"]
    # The replay is a new request: it has its own request id.
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert await count(database, Customer) == 1


async def test_replay_is_the_first_answer_even_after_a_change(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    headers = keyed(org.east_rep1, "create-then-edit")
    first = await client.post(CUSTOMERS, json={"name": "Acme"}, headers=headers)
    patched = await client.patch(
        first.headers["location"], json={"industry": "Steel"}, headers=org.east_rep1.headers
    )
    assert patched.status_code == 200, patched.text
    replay = await client.post(CUSTOMERS, json={"name": "Acme"}, headers=headers)
    assert replay.json() == first.json()
    assert replay.json()["industry"] is None
    assert await count(database, Customer) == 1


async def test_same_key_with_another_body_is_refused(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    headers = keyed(org.east_rep1, "one-key")
    assert (await client.post(CUSTOMERS, json={"name": "Acme"}, headers=headers)).is_success
    other = await client.post(CUSTOMERS, json={"name": "Other Co"}, headers=headers)
    body = problem(other, 422, "idempotency_key_reused")
    assert body["detail"]
    assert await count(database, Customer) == 1


async def test_same_key_on_another_path_is_refused(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    headers = keyed(org.east_rep1, "shared-key")
    created = await client.post(
        f"{CUSTOMERS}/{customer.id}/contacts", json={"name": "Li Wei"}, headers=headers
    )
    assert created.status_code == 201, created.text
    elsewhere = await client.post(CUSTOMERS, json={"name": "Li Wei"}, headers=headers)
    problem(elsewhere, 422, "idempotency_key_reused")
    assert await count(database, Customer) == 1


async def test_keys_belong_to_their_user(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    body = {"customer_id": str(customer.id), "kind": "call"}
    mine = await client.post(FOLLOW_UPS, json=body, headers=keyed(org.east_rep1, "k"))
    theirs = await client.post(FOLLOW_UPS, json=body, headers=keyed(org.east_manager, "k"))
    assert mine.status_code == theirs.status_code == 201, theirs.text
    assert "idempotent-replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json()["owner_id"] == str(org.east_manager.id)
    assert await count(database, FollowUp) == 2


async def test_failed_request_is_not_kept(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    headers = keyed(org.east_rep1, "fix-and-retry")
    failed = await client.post(CUSTOMERS, json={"name": "Acme", "source": "tv"}, headers=headers)
    problem(failed, 422, "validation_error")
    assert await count(database, IdempotencyRecord) == 0
    # Only stored answers pin a key to its body: after a failure the client may fix the body
    # and retry under the same key, which runs the request for real.
    fixed = await client.post(CUSTOMERS, json={"name": "Acme"}, headers=headers)
    assert fixed.status_code == 201, fixed.text
    assert "idempotent-replayed" not in fixed.headers
    # A retry of the original failing body now meets the stored success: another request.
    stale = await client.post(CUSTOMERS, json={"name": "Acme", "source": "tv"}, headers=headers)
    problem(stale, 422, "idempotency_key_reused")
    assert await count(database, Customer) == 1


async def test_business_conflict_is_not_kept(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    taken = await make_customer(database, org.east_rep1, name="Acme")
    headers = keyed(org.east_rep1, "after-conflict")
    conflict = await client.post(CUSTOMERS, json={"name": "Acme"}, headers=headers)
    problem(conflict, 409, "conflict")
    async with database.session() as session, session.begin():
        await session.execute(update(Customer).values(name="Renamed", name_key="renamed"))
    retried = await client.post(CUSTOMERS, json={"name": "Acme"}, headers=headers)
    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] != str(taken.id)


async def test_concurrent_requests_with_one_key_create_one_record(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    headers = keyed(org.east_rep1, "burst")
    answers = await asyncio.gather(
        *(client.post(CUSTOMERS, json={"name": "Burst Co"}, headers=headers) for _ in range(5))
    )
    fresh = [a for a in answers if a.status_code == 201 and "idempotent-replayed" not in a.headers]
    assert len(fresh) == 1, [a.text for a in answers]
    for answer in answers:
        if answer is fresh[0]:
            continue
        if answer.status_code == 201:
            assert answer.headers["idempotent-replayed"] == "true"
            assert answer.content == fresh[0].content
        else:
            body = problem(answer, 409, "conflict")
            assert body["reason"] == "idempotency_key_in_progress"
    assert await count(database, Customer) == 1
    assert await count(database, IdempotencyRecord) == 1


async def test_a_request_in_flight_blocks_its_retry(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    body = {"customer_id": str(customer.id), "kind": "visit"}
    headers = keyed(org.east_rep1, "in-flight")
    assert (await client.post(FOLLOW_UPS, json=body, headers=headers)).status_code == 201
    # Turn the stored answer back into a fresh claim, as while the first request still runs.
    async with database.session() as session, session.begin():
        await session.execute(update(IdempotencyRecord).values(status_code=None))
    busy = await client.post(FOLLOW_UPS, json=body, headers=headers)
    assert problem(busy, 409, "conflict")["reason"] == "idempotency_key_in_progress"
    assert await count(database, FollowUp) == 1


async def test_an_abandoned_claim_can_be_taken_over(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    body = {"customer_id": str(customer.id), "kind": "visit"}
    headers = keyed(org.east_rep1, "abandoned")
    assert (await client.post(FOLLOW_UPS, json=body, headers=headers)).status_code == 201
    # A claim minutes old with no answer: its process died before answering.
    async with database.session() as session, session.begin():
        await session.execute(
            update(IdempotencyRecord).values(
                status_code=None, created_at=utcnow() - timedelta(minutes=10)
            )
        )
    again = await client.post(FOLLOW_UPS, json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    assert await count(database, FollowUp) == 2


async def test_keys_expire(client: httpx.AsyncClient, database: Database, org: Org) -> None:
    customer = await make_customer(database, org.east_rep1)
    body = {"customer_id": str(customer.id), "kind": "call"}
    headers = keyed(org.east_rep1, "yesterday")
    first = await client.post(FOLLOW_UPS, json=body, headers=headers)
    async with database.session() as session, session.begin():
        await session.execute(
            update(IdempotencyRecord).values(created_at=utcnow() - timedelta(hours=25))
        )
    later = await client.post(FOLLOW_UPS, json=body, headers=headers)
    assert later.status_code == 201 and "idempotent-replayed" not in later.headers
    assert later.json()["id"] != first.json()["id"]
    # Within the lifetime the new answer is the one replayed.
    replay = await client.post(FOLLOW_UPS, json=body, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == later.json()["id"]
    assert await count(database, FollowUp) == 2


@pytest.mark.parametrize("key", ["", "k" * 256, "k" * 1000])
async def test_key_length_is_bounded(
    client: httpx.AsyncClient, database: Database, org: Org, key: str
) -> None:
    response = await client.post(
        CUSTOMERS, json={"name": "Acme"}, headers=keyed(org.east_rep1, key)
    )
    problem(response, 400, "bad_request")
    assert await count(database, Customer) == 0
    assert await count(database, IdempotencyRecord) == 0


async def test_longest_key_is_accepted(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    headers = keyed(org.east_rep1, "k" * 255)
    assert (await client.post(CUSTOMERS, json={"name": "Acme"}, headers=headers)).status_code == 201
    replay = await client.post(CUSTOMERS, json={"name": "Acme"}, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"


async def test_oversized_body_is_refused_before_it_runs(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    body = {"name": "Acme", "needs": "x" * 1_100_000}
    response = await client.post(CUSTOMERS, json=body, headers=keyed(org.east_rep1, "big"))
    problem(response, 413, "payload_too_large")
    assert await count(database, Customer) == 0
    assert await count(database, IdempotencyRecord) == 0


async def test_key_without_credentials_is_a_plain_401(
    client: httpx.AsyncClient, database: Database
) -> None:
    response = await client.post(CUSTOMERS, json={"name": "Acme"}, headers={"Idempotency-Key": "x"})
    problem(response, 401, "unauthorized")
    assert await count(database, IdempotencyRecord) == 0


async def test_without_a_key_each_post_runs(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    body = {"customer_id": str(customer.id), "kind": "call"}
    for _ in range(2):
        response = await client.post(FOLLOW_UPS, json=body, headers=org.east_rep1.headers)
        assert response.status_code == 201 and "idempotent-replayed" not in response.headers
    assert await count(database, FollowUp) == 2
    assert await count(database, IdempotencyRecord) == 0


async def test_purge_drops_only_expired_keys(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    for key in ("old", "new"):
        response = await client.post(
            CUSTOMERS, json={"name": f"{key} Co"}, headers=keyed(org.east_rep1, key)
        )
        assert response.status_code == 201
    async with database.session() as session, session.begin():
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == "old")
            .values(created_at=utcnow() - timedelta(hours=25))
        )
    assert await purge_expired(database) == 1
    async with database.session(write=False) as session:
        assert (await session.scalars(select(IdempotencyRecord.key))).all() == ["new"]


async def test_purge_goes_in_batches_until_nothing_expired_is_left(
    database: Database, executed: list[str]
) -> None:
    old = utcnow() - timedelta(hours=25)
    async with database.session() as session, session.begin():
        for n in range(7):
            session.add(
                IdempotencyRecord(principal="p", key=f"old-{n}", request_digest="d", created_at=old)
            )
        session.add(IdempotencyRecord(principal="p", key="fresh", request_digest="d"))
    executed.clear()
    assert await purge_expired(database, batch=3) == 7
    deletes = [sql for sql in executed if sql.lstrip().upper().startswith("DELETE")]
    # Batches of 3, 3 and 1: the last, short, says nothing expired is left.
    assert len(deletes) == 3
    async with database.session(write=False) as session:
        assert (await session.scalars(select(IdempotencyRecord.key))).all() == ["fresh"]
    assert await purge_expired(database, batch=3) == 0
