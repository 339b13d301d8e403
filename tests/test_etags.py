"""Conditional GETs: If-None-Match answers 304 while the copy is current, and ETags change
whenever the answer does, also when only the clock (or another row) changed it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.db import Database
from app.models.complaints import Complaint, ComplaintRead
from app.models.contracts import Contract, ContractRead, ContractStatus
from app.models.customers import Customer, CustomerRead
from app.models.pipeline import OpportunityRead
from app.models.types import utcnow
from app.models.webhooks import WebhookEndpoint
from tests.complaint_helpers import make_complaint
from tests.contract_helpers import make_contract
from tests.factories import Org, Person, etag_of, make_customer, make_org, problem
from tests.pipeline_helpers import make_opportunity, make_product, make_quote

API = "/api/v1"


@pytest.fixture
async def org(database: Database) -> Org:
    return await make_org(database)


async def current(client: httpx.AsyncClient, url: str, who: Person) -> httpx.Response:
    response = await client.get(url, headers=who.headers)
    assert response.status_code == 200, response.text
    assert response.headers["etag"]
    return response


async def if_none_match(
    client: httpx.AsyncClient, url: str, who: Person, tag: str
) -> httpx.Response:
    return await client.get(url, headers={**who.headers, "If-None-Match": tag})


def not_modified(response: httpx.Response, tag: str) -> None:
    assert response.status_code == 304, response.text
    assert response.content == b""
    assert response.headers["etag"] == tag
    assert "content-type" not in response.headers
    assert response.headers["x-request-id"]


async def change_behind_the_version(
    database: Database, model: Any, row_id: Any, **values: Any
) -> None:
    """Change columns as the clock or the server's bookkeeping would: version and updated_at
    as they were."""
    async with database.session() as session, session.begin():
        await session.execute(
            update(model)
            .where(model.id == row_id)
            .values(**values, updated_at=model.updated_at)
            .execution_options(synchronize_session=False)
        )


# 304 --------------------------------------------------------------------------------------


async def test_a_current_copy_is_not_sent_again(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    url = f"{API}/customers/{customer.id}"
    first = await current(client, url, org.east_rep1)
    tag = first.headers["etag"]
    assert tag == etag_of(CustomerRead, first) and first.json()["version"] == 1
    for sent in (tag, f"W/{tag}", f'"0", {tag}', "*", f' "7" ,W/{tag} '):
        not_modified(await if_none_match(client, url, org.east_rep1, sent), tag)
    for stale in ('"0"', '"1"', '"1-0a0b0c0d"', "1", '"11"', "garbage"):
        again = await if_none_match(client, url, org.east_rep1, stale)
        assert again.status_code == 200 and again.json() == first.json()

    changed = await client.patch(url, json={"industry": "Pumps"}, headers=org.east_rep1.headers)
    fresh_tag = changed.headers["etag"]
    assert fresh_tag == etag_of(CustomerRead, changed) and changed.json()["version"] == 2
    fresh = await if_none_match(client, url, org.east_rep1, tag)
    assert fresh.status_code == 200 and fresh.json()["industry"] == "Pumps"
    assert fresh.headers["etag"] == fresh_tag
    not_modified(await if_none_match(client, url, org.east_rep1, fresh_tag), fresh_tag)


async def test_if_none_match_changes_no_write(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    url = f"{API}/customers/{customer.id}"
    response = await client.patch(
        url, json={"industry": "Pumps"}, headers={**org.east_rep1.headers, "If-None-Match": "*"}
    )
    assert response.status_code == 200 and response.json()["industry"] == "Pumps"


async def test_scope_and_errors_come_before_304(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    url = f"{API}/customers/{customer.id}"
    problem(await if_none_match(client, url, org.north_rep, "*"), 404, "not_found")
    problem(await client.get(url, headers={"If-None-Match": '"1"'}), 401, "unauthorized")


async def _single_resources(client: httpx.AsyncClient, database: Database, org: Org) -> dict:
    """One resource of every kind a GET answers with an ETag: {OpenAPI path: (url, reader)}."""
    director, rep = org.director, org.east_rep1
    customer = await make_customer(database, rep)

    async def created(path: str, who: Person, body: dict) -> str:
        response = await client.post(f"{API}{path}", json=body, headers=who.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    contact = await created(f"/customers/{customer.id}/contacts", rep, {"name": "Qian Wei"})
    follow_up = await created(
        "/follow-ups",
        rep,
        {
            "customer_id": str(customer.id),
            "kind": "call",
            "status": "planned",
            "due_at": "2030-01-01T02:00:00Z",
        },
    )
    product = await make_product(database)
    opportunity = await make_opportunity(database, rep)
    quote = await make_quote(database, rep, opportunity)
    contract = await make_contract(database, rep)
    delivery = await created(
        f"/contracts/{contract.id}/deliveries",
        rep,
        {"description": "Two pumps", "planned_date": "2030-01-01"},
    )
    complaint = await make_complaint(database, rep)
    target = await created(
        "/targets",
        director,
        {"period": "2026-Q3", "metric": "signed_revenue", "value": "1000.00", "scope": "company"},
    )
    webhook = await created(
        "/webhooks", director, {"url": "https://hooks.example.com/in", "events": ["*"]}
    )
    return {
        "/api/v1/auth/me": (f"{API}/auth/me", rep),
        "/api/v1/settings": (f"{API}/settings", director),
        "/api/v1/regions/{region_id}": (f"{API}/regions/{org.east.id}", rep),
        "/api/v1/users/{user_id}": (f"{API}/users/{rep.id}", org.east_manager),
        "/api/v1/customers/{customer_id}": (f"{API}/customers/{customer.id}", rep),
        "/api/v1/contacts/{contact_id}": (f"{API}/contacts/{contact}", rep),
        "/api/v1/follow-ups/{follow_up_id}": (f"{API}/follow-ups/{follow_up}", rep),
        "/api/v1/products/{product_id}": (f"{API}/products/{product.id}", rep),
        "/api/v1/opportunities/{opportunity_id}": (f"{API}/opportunities/{opportunity.id}", rep),
        "/api/v1/quotes/{quote_id}": (f"{API}/quotes/{quote.id}", rep),
        "/api/v1/contracts/{contract_id}": (f"{API}/contracts/{contract.id}", rep),
        "/api/v1/deliveries/{delivery_id}": (f"{API}/deliveries/{delivery}", rep),
        "/api/v1/complaints/{complaint_id}": (f"{API}/complaints/{complaint.id}", rep),
        "/api/v1/targets/{target_id}": (f"{API}/targets/{target}", director),
        "/api/v1/webhooks/{webhook_id}": (f"{API}/webhooks/{webhook}", director),
    }


async def test_every_get_of_one_resource_answers_304_for_a_current_copy(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    resources = await _single_resources(client, database, org)
    document = (await client.get("/openapi.json")).json()
    documented = {
        path
        for path, operations in document["paths"].items()
        if "304" in operations.get("get", {}).get("responses", {})
    }
    # Every GET that documents an ETag honours If-None-Match, and each is tried here.
    assert documented == resources.keys()
    for path in documented:
        parameters = document["paths"][path]["get"]["parameters"]
        assert {"name": "If-None-Match", "in": "header"}.items() <= next(
            p for p in parameters if p["name"] == "If-None-Match"
        ).items()
    for url, who in resources.values():
        tag = (await current(client, url, who)).headers["etag"]
        not_modified(await if_none_match(client, url, who, tag), tag)
        assert (await if_none_match(client, url, who, '"999"')).status_code == 200


# ETags follow the answer ------------------------------------------------------------------


async def test_a_complaints_etag_changes_when_it_breaches(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    complaint = await make_complaint(database, org.east_rep1)
    url = f"{API}/complaints/{complaint.id}"
    before = await current(client, url, org.east_rep1)
    assert before.json()["breached"] is False and before.json()["version"] == 1
    assert before.headers["etag"] == etag_of(ComplaintRead, before)

    # The acknowledge due time passes (as the clock would move past it).
    await change_behind_the_version(
        database, Complaint, complaint.id, acknowledge_due_at=utcnow() - timedelta(minutes=1)
    )
    after = await if_none_match(client, url, org.east_rep1, before.headers["etag"])
    assert after.status_code == 200, after.text
    body = after.json()
    assert body["breached"] is True and body["escalated_at"] is not None
    assert body["version"] == 1
    tag = after.headers["etag"]
    assert tag.startswith('"1-') and tag != before.headers["etag"]
    not_modified(await if_none_match(client, url, org.east_rep1, tag), tag)

    # If-Match takes what the client got: the version decides, not the clock.
    stale = await client.patch(
        url,
        json={"description": "Late delivery, second lot too."},
        headers={**org.east_manager.headers, "If-Match": '"0-1a2b3c4d"'},
    )
    problem(stale, 412, "version_conflict")
    changed = await client.patch(
        url,
        json={"description": "Late delivery, second lot too."},
        headers={**org.east_manager.headers, "If-Match": tag},
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"].startswith('"2-')
    again = await client.patch(
        url,
        json={"description": "Late delivery of both lots."},
        headers={**org.east_manager.headers, "If-Match": 'W/"2"'},
    )
    assert again.status_code == 200, again.text


async def test_a_complaints_etag_follows_its_escalation(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    complaint = await make_complaint(
        database, org.east_rep1, received_at=utcnow() - timedelta(hours=9)
    )
    url = f"{API}/complaints/{complaint.id}"
    first = await current(client, url, org.east_rep1)  # breached, and escalated by this read
    assert first.json()["escalated_at"] is not None
    # Escalated at another time, the version as it was: the answer differs, so does the tag.
    await change_behind_the_version(
        database, Complaint, complaint.id, escalated_at=utcnow() - timedelta(minutes=5)
    )
    after = await if_none_match(client, url, org.east_rep1, first.headers["etag"])
    assert after.status_code == 200
    assert after.json()["escalated_at"] != first.json()["escalated_at"]
    assert after.headers["etag"] != first.headers["etag"]


async def test_a_contracts_etag_changes_when_its_review_becomes_overdue(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    contract = await make_contract(database, org.east_rep1, ContractStatus.UNDER_REVIEW)
    url = f"{API}/contracts/{contract.id}"
    before = await current(client, url, org.east_manager)
    assert before.json()["review_overdue"] is False
    tag = before.headers["etag"]
    assert tag == etag_of(ContractRead, before)

    await change_behind_the_version(
        database, Contract, contract.id, review_due_at=utcnow() - timedelta(minutes=1)
    )
    after = await if_none_match(client, url, org.east_manager, tag)
    assert after.status_code == 200, after.text
    assert after.json()["review_overdue"] is True
    assert after.json()["version"] == before.json()["version"]
    overdue = after.headers["etag"]
    assert overdue != tag and overdue.startswith(f'"{before.json()["version"]}-')
    not_modified(await if_none_match(client, url, org.east_manager, overdue), overdue)


async def test_a_customers_etag_changes_when_it_turns_dormant(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    customer = await make_customer(database, org.east_rep1)
    await change_behind_the_version(
        database, Customer, customer.id, created_at=utcnow() - timedelta(days=100)
    )
    url = f"{API}/customers/{customer.id}"
    before = await current(client, url, org.east_rep1)
    assert before.json()["status"] == "prospect" and before.json()["version"] == 1
    assert before.headers["etag"] == etag_of(CustomerRead, before)
    # The customer's row stays; the rule that makes 100 days without a follow-up dormant comes.
    changed = await client.patch(
        f"{API}/settings", json={"dormant_after_days": 90}, headers=org.director.headers
    )
    assert changed.status_code == 200, changed.text
    after = await if_none_match(client, url, org.east_rep1, before.headers["etag"])
    assert after.status_code == 200 and after.json()["status"] == "dormant"
    tag = after.headers["etag"]
    assert tag.startswith('"1-') and tag != before.headers["etag"]
    not_modified(await if_none_match(client, url, org.east_rep1, tag), tag)


async def test_etags_change_when_the_names_shown_beside_ids_do(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    """A renamed customer or owner changes what an opportunity's answer shows
    (``customer_name``, ``owner_name``) but not its row's version: its ETag changes too."""
    opportunity = await make_opportunity(database, org.east_rep1)
    customer_url = f"{API}/customers/{opportunity.customer_id}"
    url = f"{API}/opportunities/{opportunity.id}"
    before = await current(client, url, org.east_rep1)
    assert before.headers["etag"] == etag_of(OpportunityRead, before)

    renamed = await client.patch(
        customer_url, json={"name": "Renamed Pumps Ltd"}, headers=org.east_rep1.headers
    )
    assert renamed.status_code == 200, renamed.text
    after = await if_none_match(client, url, org.east_rep1, before.headers["etag"])
    assert after.status_code == 200 and after.json()["customer_name"] == "Renamed Pumps Ltd"
    assert after.json()["version"] == before.json()["version"]
    assert after.headers["etag"] != before.headers["etag"]

    owner = await client.patch(
        f"{API}/auth/me", json={"full_name": "Renamed Rep"}, headers=org.east_rep1.headers
    )
    assert owner.status_code == 200, owner.text
    customer_before = renamed.headers["etag"]
    latest = await if_none_match(client, url, org.east_rep1, after.headers["etag"])
    assert latest.status_code == 200 and latest.json()["owner_name"] == "Renamed Rep"
    assert latest.headers["etag"] != after.headers["etag"]
    read = await if_none_match(client, customer_url, org.east_rep1, customer_before)
    assert read.status_code == 200 and read.json()["owner_name"] == "Renamed Rep"
    not_modified(
        await if_none_match(client, url, org.east_rep1, latest.headers["etag"]),
        latest.headers["etag"],
    )


async def test_a_targets_etag_changes_when_its_children_do(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    body = {"period": "2026-Q3", "metric": "signed_revenue"}
    company = await client.post(
        f"{API}/targets",
        json={**body, "scope": "company", "value": "900.00"},
        headers=org.director.headers,
    )
    url = f"{API}/targets/{company.json()['id']}"
    before = await current(client, url, org.director)
    region = await client.post(
        f"{API}/targets",
        json={**body, "scope": "region", "scope_id": str(org.east.id), "value": "300.00"},
        headers=org.director.headers,
    )
    assert region.status_code == 201, region.text
    after = await if_none_match(client, url, org.director, before.headers["etag"])
    assert after.status_code == 200 and after.json()["allocated"] == "300.00"
    assert after.json()["version"] == before.json()["version"]
    assert after.headers["etag"] != before.headers["etag"]


async def test_a_webhooks_etag_changes_when_deliveries_start_failing(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    created = await client.post(
        f"{API}/webhooks",
        json={"url": "https://hooks.example.com/in", "events": ["*"]},
        headers=org.director.headers,
    )
    url = f"{API}/webhooks/{created.json()['id']}"
    before = await current(client, url, org.director)
    for failing_since in (utcnow(), utcnow() + timedelta(seconds=1)):
        await change_behind_the_version(
            database, WebhookEndpoint, uuid.UUID(created.json()["id"]), failing_since=failing_since
        )
        after = await if_none_match(client, url, org.director, before.headers["etag"])
        assert after.status_code == 200 and after.json()["failing_since"] is not None
        assert after.headers["etag"] != before.headers["etag"]
        before = after


async def test_me_and_settings_etags_follow_the_departments_settings(
    client: httpx.AsyncClient, database: Database, org: Org
) -> None:
    me = await current(client, f"{API}/auth/me", org.east_rep1)
    settings = await current(client, f"{API}/settings", org.director)
    hours = {"time_zone": "Asia/Urumqi", "start": "10:00", "end": "19:00", "working_days": [0]}
    changed = await client.patch(
        f"{API}/settings", json={"business_hours": hours}, headers=org.director.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] != settings.headers["etag"]
    after = await if_none_match(client, f"{API}/auth/me", org.east_rep1, me.headers["etag"])
    assert after.status_code == 200 and after.json()["business_hours"] == hours
    assert after.json()["version"] == me.json()["version"]
    assert after.headers["etag"] != me.headers["etag"]
