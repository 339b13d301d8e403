"""Quotes expire: no past validity on create, change or send, and the worker moves sent
quotes past their date to ``expired`` through the workflow, once each."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta

import httpx
from sqlalchemy import select

from app.db import Database
from app.models.pipeline import Stage
from app.models.platform import Event
from app.models.quotes import Quote, QuoteStatus
from app.services import department
from app.worker import expire_quotes
from tests.factories import make_org, problem
from tests.pipeline_helpers import make_opportunity, make_product, make_quote

API = "/api/v1"


def _day(offset: int) -> date:
    return department.today() + timedelta(days=offset)


async def _set_valid_until(database: Database, quote_id: uuid.UUID, day: date) -> None:
    """Moves the clock: a quote dated when it was still valid, whose date has now passed."""
    async with database.session() as session, session.begin():
        (await session.get_one(Quote, quote_id)).valid_until = day


async def _events(database: Database, quote_id: uuid.UUID) -> list[str]:
    async with database.session(write=False) as session:
        stmt = select(Event.type).where(Event.entity_id == quote_id).order_by(Event.seq)
        return list((await session.scalars(stmt)).all())


async def test_a_past_validity_is_refused_on_create_and_change(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    opp = await make_opportunity(database, rep, Stage.PROPOSAL)
    product = await make_product(database)
    line = {"product_id": str(product.id), "quantity": "1"}
    path = f"{API}/opportunities/{opp.id}/quotes"

    for past in ("2020-01-01", _day(-1).isoformat()):
        refused = await client.post(
            path, headers=rep.headers, json={"valid_until": past, "lines": [line]}
        )
        body = problem(refused, 422, "validation_error")
        assert [e["loc"] for e in body["errors"]] == [["body", "valid_until"]]
    listed = await client.get(path, headers=rep.headers)
    assert listed.json()["items"] == []

    today = await client.post(
        path, headers=rep.headers, json={"valid_until": _day(0).isoformat(), "lines": [line]}
    )
    assert today.status_code == 201, today.text
    quote = today.json()
    changed = await client.patch(
        f"{API}/quotes/{quote['id']}", headers=rep.headers, json={"valid_until": "2020-01-01"}
    )
    body = problem(changed, 422, "validation_error")
    assert [e["loc"] for e in body["errors"]] == [["body", "valid_until"]]
    again = await client.get(f"{API}/quotes/{quote['id']}", headers=rep.headers)
    assert (again.json()["valid_until"], again.json()["version"]) == (
        quote["valid_until"],
        quote["version"],
    )


async def test_a_quote_past_its_date_is_not_sent(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    opp = await make_opportunity(database, rep, Stage.NEGOTIATION)
    quote = await make_quote(database, rep, opp, QuoteStatus.APPROVED)
    await _set_valid_until(database, quote.id, _day(-1))
    path = f"{API}/quotes/{quote.id}/transitions"

    options = (await client.get(path, headers=rep.headers)).json()
    assert [(o["to"], o["blocked_by"]) for o in options] == [("sent", "still_valid")]
    refused = await client.post(path, headers=rep.headers, json={"to": "sent"})
    assert problem(refused, 409, "conflict")["reason"] == "still_valid"
    read = await client.get(f"{API}/quotes/{quote.id}", headers=rep.headers)
    assert read.json()["status"] == "approved"

    await _set_valid_until(database, quote.id, _day(0))  # good through its last day
    sent = await client.post(path, headers=rep.headers, json={"to": "sent"})
    assert sent.json()["status"] == "sent", sent.text


async def test_the_worker_expires_sent_quotes_past_their_date_once(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    opp = await make_opportunity(database, rep, Stage.NEGOTIATION)
    overdue = await make_quote(database, rep, opp, QuoteStatus.SENT)
    last_day = await make_quote(database, rep, opp, QuoteStatus.SENT)
    approved = await make_quote(database, rep, opp, QuoteStatus.APPROVED)
    undated = await make_quote(database, rep, opp, QuoteStatus.SENT)
    for quote, day in ((overdue, -1), (last_day, 0), (approved, -1)):
        await _set_valid_until(database, quote.id, _day(day))
    before = (await client.get(f"{API}/quotes/{overdue.id}", headers=rep.headers)).json()

    assert await expire_quotes(database) == 1
    assert await expire_quotes(database) == 0

    after = (await client.get(f"{API}/quotes/{overdue.id}", headers=rep.headers)).json()
    assert after["status"] == "expired"
    assert after["version"] == before["version"] + 1  # a client's If-Match of it is stale now
    for other, status in ((last_day, "sent"), (approved, "approved"), (undated, "sent")):
        read = await client.get(f"{API}/quotes/{other.id}", headers=rep.headers)
        assert read.json()["status"] == status
    assert (await _events(database, overdue.id))[-2:] == ["quote.status_changed", "quote.expired"]
    async with database.session(write=False) as session:
        expired = (await session.scalars(select(Event).where(Event.type == "quote.expired"))).all()
    assert [(e.entity_id, e.actor_id, e.data["from"]) for e in expired] == [
        (overdue.id, None, "sent")
    ]
    # An expired quote is closed: it is accepted no more.
    accept = await client.post(
        f"{API}/quotes/{overdue.id}/transitions", headers=rep.headers, json={"to": "accepted"}
    )
    problem(accept, 409, "invalid_transition")


async def test_concurrent_workers_expire_each_quote_once(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    opp = await make_opportunity(database, rep, Stage.NEGOTIATION)
    made = []
    for _ in range(7):
        quote = await make_quote(database, rep, opp, QuoteStatus.SENT)
        await _set_valid_until(database, quote.id, _day(-3))
        made.append(quote.id)

    # Small batches: many short transactions each, interleaving with the other worker's.
    counts = await asyncio.gather(
        expire_quotes(database, batch_size=2), expire_quotes(database, batch_size=2)
    )

    assert sum(counts) == 7
    async with database.session(write=False) as session:
        stmt = select(Event.entity_id).where(Event.type == "quote.expired")
        assert sorted((await session.scalars(stmt)).all()) == sorted(made)
    history = await client.get(f"{API}/opportunities/{opp.id}/quotes", headers=rep.headers)
    assert {q["status"] for q in history.json()["items"]} == {"expired"}
