"""The sorts screens need: follow-ups by ``due_at``, customers by ``follow_up_due_at``,
opportunities by ``expected_close_date`` and ``amount``. Paged through in both directions,
with repeated values and empty ones (last either way), every row comes once, in order."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.db import Database
from app.models.customers import Customer
from app.models.types import utcnow
from tests.factories import Person, make_customer, make_org, problem

API = "/api/v1"


def expected_order(rows: Sequence[tuple[Any, uuid.UUID]], descending: bool) -> list[str]:
    """Ids by value (ties by id, in the same direction), the rows without a value last."""
    present = sorted((r for r in rows if r[0] is not None), reverse=descending)
    empty = sorted((r[1] for r in rows if r[0] is None), reverse=descending)
    return [str(row_id) for _, row_id in present] + [str(row_id) for row_id in empty]


async def walk(
    client: httpx.AsyncClient,
    person: Person,
    collection: str,
    sort: str,
    limit: int,
    params: dict[str, str] | None = None,
) -> list[str]:
    """Every id of a list, page by page."""
    ids: list[str] = []
    cursor = None
    for _ in range(100):
        query = {**(params or {}), "sort": sort, "limit": str(limit)}
        if cursor:
            query["cursor"] = cursor
        page = await client.get(f"{API}/{collection}", params=query, headers=person.headers)
        assert page.status_code == 200, page.text
        ids += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("the pages never ended")


async def check_every_order(
    client: httpx.AsyncClient,
    person: Person,
    collection: str,
    field: str,
    rows: Sequence[tuple[Any, uuid.UUID]],
    params: dict[str, str] | None = None,
) -> None:
    # Page sizes 1 to 4 put a page's end between equal values, between a value and the
    # empty rows, and among the empty rows.
    for descending in (False, True):
        sort = f"-{field}" if descending else field
        want = expected_order(rows, descending)
        for limit in (1, 2, 3, 4, 50):
            got = await walk(client, person, collection, sort, limit, params)
            assert got == want, (sort, limit)


async def test_follow_ups_by_due_at(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    customer = await make_customer(database, rep)
    soon = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    later = soon + timedelta(days=5)
    rows = []
    for due in (later, soon, None, soon, None, later, soon, None):
        body: dict[str, Any] = {"customer_id": str(customer.id), "kind": "call"}
        if due is None:
            body["status"] = "done"  # done without a due time
        else:
            body |= {"status": "planned", "due_at": due.isoformat()}
        created = await client.post(f"{API}/follow-ups", json=body, headers=rep.headers)
        assert created.status_code == 201, created.text
        answer = created.json()
        assert (answer["due_at"] is None) == (due is None)
        rows.append((due, uuid.UUID(answer["id"])))

    await check_every_order(client, rep, "follow-ups", "due_at", rows)
    # Filtered lists page the same way.
    await check_every_order(
        client, rep, "follow-ups", "due_at", rows, {"customer_id": str(customer.id)}
    )


async def _set_due(database: Database, customer_id: uuid.UUID, due: datetime | None) -> None:
    async with database.session() as session, session.begin():
        await session.execute(
            update(Customer).where(Customer.id == customer_id).values(follow_up_due_at=due)
        )


async def test_customers_by_follow_up_due_at(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    first = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    second = first + timedelta(days=3)
    rows = []
    for due in (second, None, first, first, None, second, first, None, None):
        customer = await make_customer(database, rep)
        # Every customer gets a due date when created; set-up makes some equal and some empty.
        await _set_due(database, customer.id, due)
        rows.append((due, customer.id))

    # The unfiltered list (a statement built once per role and order) and a filtered one.
    await check_every_order(client, rep, "customers", "follow_up_due_at", rows)
    await check_every_order(
        client, rep, "customers", "follow_up_due_at", rows, {"classification": "C"}
    )
    # The director's and the manager's statements are others again.
    for viewer in (org.east_manager, org.director):
        await check_every_order(
            client, viewer, "customers", "follow_up_due_at", rows, {"owner_id": str(rep.id)}
        )
        listed = await walk(client, viewer, "customers", "follow_up_due_at", 2)
        assert listed == expected_order(rows, descending=False)


async def test_opportunities_by_expected_close_date_and_amount(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    customer = await make_customer(database, rep)
    # Dates to come: a new opportunity is not expected to close in the past.
    june, july = date(2099, 6, 30), date(2099, 7, 31)
    by_date, by_amount = [], []
    for close, amount in (
        (july, "500.00"),
        (None, "100.00"),
        (june, "500.00"),
        (june, "100.00"),
        (None, "0.00"),
        (july, "100.00"),
        (None, "500.00"),
    ):
        body: dict[str, Any] = {"customer_id": str(customer.id), "title": "Deal", "amount": amount}
        if close is not None:
            body["expected_close_date"] = close.isoformat()
        created = await client.post(f"{API}/opportunities", json=body, headers=rep.headers)
        assert created.status_code == 201, created.text
        opp_id = uuid.UUID(created.json()["id"])
        by_date.append((close, opp_id))
        by_amount.append((float(amount), opp_id))

    await check_every_order(client, rep, "opportunities", "expected_close_date", by_date)
    await check_every_order(client, rep, "opportunities", "amount", by_amount)
    await check_every_order(
        client,
        rep,
        "opportunities",
        "expected_close_date",
        by_date,
        {"customer_id": str(customer.id)},
    )


def _cursor(*parts: Any) -> str:
    raw = json.dumps(list(parts), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("collection", "sort"),
    [("customers", "-created_at"), ("opportunities", "amount"), ("follow-ups", "created_at")],
)
async def test_an_empty_value_in_a_cursor_of_a_column_that_is_never_empty_is_refused(
    client: httpx.AsyncClient, database: Database, collection: str, sort: str
) -> None:
    org = await make_org(database)
    cursor = _cursor(sort, None, str(uuid.uuid4()))
    response = await client.get(
        f"{API}/{collection}", params={"sort": sort, "cursor": cursor}, headers=org.director.headers
    )
    problem(response, 400, "bad_request")
