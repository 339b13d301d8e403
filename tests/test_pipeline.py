"""The pipeline end to end: gates, the lead → won path with an approved discount, approvals."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import httpx

from app.db import Database
from app.models.pipeline import Stage
from app.models.quotes import QuoteStatus
from app.services import department
from tests.factories import make_customer, make_org, problem
from tests.pipeline_helpers import make_opportunity, make_product, make_quote

API = "/api/v1"


async def _move(
    client: httpx.AsyncClient, headers: dict[str, str], path: str, to: str, **extra: str
) -> httpx.Response:
    return await client.post(f"{API}/{path}/transitions", json={"to": to, **extra}, headers=headers)


async def test_lead_to_won_with_a_discount_the_director_approves(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    pump = await make_product(database, "1000.00")
    valve = await make_product(database, "250.00")
    customer = await make_customer(database, rep)

    created = await client.post(
        f"{API}/opportunities",
        headers=rep.headers,
        json={
            "customer_id": str(customer.id),
            "title": "Pumps for the new plant",
            "expected_close_date": "2026-12-31",
        },
    )
    assert created.status_code == 201, created.text
    opp = created.json()
    assert (opp["stage"], opp["probability"], opp["owner_id"]) == ("lead", 10, str(rep.id))
    opp_path = f"opportunities/{opp['id']}"

    assert (await _move(client, rep.headers, opp_path, "contacted")).status_code == 200
    assert (await _move(client, rep.headers, opp_path, "needs_analysis")).status_code == 200
    body = problem(await _move(client, rep.headers, opp_path, "proposal"), 409, "conflict")
    assert body["reason"] == "needs_recorded"
    await client.patch(
        f"{API}/{opp_path}",
        headers=rep.headers,
        json={"needs_summary": "Ten pumps, four valves, delivery in March"},
    )
    assert (await _move(client, rep.headers, opp_path, "proposal")).status_code == 200
    body = problem(await _move(client, rep.headers, opp_path, "negotiation"), 409, "conflict")
    assert body["reason"] == "quote_exists"

    # 10 pumps at 850 (15% off) and 4 valves at list: 9000 of 11000 at list, 18.18% off.
    quote = await client.post(
        f"{API}/{opp_path}/quotes",
        headers=rep.headers,
        json={
            # Past dates are refused: a date ahead of whenever the suite runs.
            "valid_until": (department.today() + timedelta(days=60)).isoformat(),
            "payment_terms": "30% advance",
            "lines": [
                {"product_id": str(pump.id), "quantity": "10", "unit_price": "850.00"},
                {"product_id": str(valve.id), "quantity": "4"},
            ],
        },
    )
    assert quote.status_code == 201, quote.text
    q = quote.json()
    assert (q["subtotal"], q["total"], q["discount_percent"]) == ("11000.00", "9500.00", "13.64")
    assert q["approver_role"] == "director"
    assert [line["discount_percent"] for line in q["lines"]] == ["15.00", "0.00"]
    quote_path = f"quotes/{q['id']}"

    assert (await _move(client, rep.headers, opp_path, "negotiation")).status_code == 200
    body = problem(await _move(client, rep.headers, opp_path, "won"), 409, "conflict")
    assert body["reason"] == "quote_accepted"

    submitted = await _move(client, rep.headers, quote_path, "pending_approval")
    assert submitted.json()["status"] == "pending_approval"
    inbox = (await client.get(f"{API}/approvals", headers=org.director.headers)).json()["items"]
    assert [item["id"] for item in inbox] == [q["id"]]
    manager_inbox = await client.get(f"{API}/approvals", headers=org.east_manager.headers)
    assert manager_inbox.json()["items"] == []
    refused = await _move(client, org.east_manager.headers, quote_path, "approved")
    problem(refused, 403, "forbidden")
    problem(await _move(client, rep.headers, quote_path, "approved"), 403, "forbidden")
    approved = await _move(client, org.director.headers, quote_path, "approved", note="OK")
    assert approved.json()["status"] == "approved"
    assert (await _move(client, rep.headers, quote_path, "sent")).status_code == 200
    assert (await _move(client, rep.headers, quote_path, "accepted")).status_code == 200

    won = await _move(client, rep.headers, opp_path, "won")
    assert won.status_code == 200, won.text
    assert (won.json()["amount"], won.json()["probability"]) == ("9500.00", 100)
    assert won.json()["won_at"] is not None
    problem(
        await client.patch(f"{API}/{opp_path}", headers=rep.headers, json={"title": "Changed"}),
        409,
        "conflict",
    )

    history = (await client.get(f"{API}/{opp_path}/history", headers=rep.headers)).json()
    assert [h["to_state"] for h in history["items"]] == [
        "contacted",
        "needs_analysis",
        "proposal",
        "negotiation",
        "won",
    ]
    events = (await client.get(f"{API}/events", headers=rep.headers, params={"limit": 200})).json()[
        "items"
    ]
    types = {e["type"] for e in events}
    assert {
        "opportunity.created",
        "opportunity.stage_changed",
        "opportunity.won",
        "quote.approval_requested",
        "quote.approved",
        "quote.accepted",
    } <= types


async def test_a_quote_without_discount_approves_on_submit(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    opp = await make_opportunity(database, org.east_rep1, Stage.PROPOSAL)
    quote = await make_quote(database, org.east_rep1, opp)
    response = await _move(client, org.east_rep1.headers, f"quotes/{quote.id}", "pending_approval")
    assert response.json()["status"] == "approved"
    assert response.json()["approver_role"] is None


async def test_a_managers_discount_waits_in_the_regions_inbox_only(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    opp = await make_opportunity(database, org.east_rep1, Stage.PROPOSAL)
    quote = await make_quote(database, org.east_rep1, opp, unit_price="920.00")
    await _move(client, org.east_rep1.headers, f"quotes/{quote.id}", "pending_approval")
    east = (await client.get(f"{API}/approvals", headers=org.east_manager.headers)).json()
    north = (await client.get(f"{API}/approvals", headers=org.north_manager.headers)).json()
    assert [i["id"] for i in east["items"]] == [str(quote.id)]
    assert east["items"][0]["discount_percent"] == "8.00"
    assert north["items"] == []
    rejected = await _move(
        client,
        org.east_manager.headers,
        f"quotes/{quote.id}",
        "rejected",
        note="Too low for this volume",
    )
    assert rejected.json()["status"] == "rejected"
    back = await _move(client, org.east_rep1.headers, f"quotes/{quote.id}", "draft")
    assert back.json()["status"] == "draft"


async def test_a_discount_over_the_managers_limit_by_any_amount_needs_the_director(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    opp = await make_opportunity(database, org.east_rep1, Stage.PROPOSAL)
    pump = await make_product(database, "1000.00")

    async def approver(unit_price: str) -> tuple[str, str | None]:
        created = await client.post(
            f"{API}/opportunities/{opp.id}/quotes",
            headers=org.east_rep1.headers,
            json={
                "lines": [{"product_id": str(pump.id), "quantity": "100", "unit_price": unit_price}]
            },
        )
        assert created.status_code == 201, created.text
        submitted = await _move(
            client, org.east_rep1.headers, f"quotes/{created.json()['id']}", "pending_approval"
        )
        return submitted.json()["discount_percent"], submitted.json()["approver_role"]

    # 100 × 899.99 of 100,000.00 is 10.001% off: shown as 10.00, but above the limit.
    assert await approver("899.99") == ("10.00", "director")
    assert await approver("900.00") == ("10.00", "regional_manager")


async def test_lines_change_only_in_draft(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    opp = await make_opportunity(database, org.east_rep1, Stage.PROPOSAL)
    quote = await make_quote(database, org.east_rep1, opp, QuoteStatus.APPROVED)
    product = await make_product(database)
    response = await client.patch(
        f"{API}/quotes/{quote.id}",
        headers=org.east_rep1.headers,
        json={"lines": [{"product_id": str(product.id), "quantity": 1}]},
    )
    assert problem(response, 409, "conflict")["reason"] == "quote_not_draft"


async def test_only_one_accepted_quote_per_opportunity(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    opp = await make_opportunity(database, org.east_rep1, Stage.NEGOTIATION)
    await make_quote(database, org.east_rep1, opp, QuoteStatus.ACCEPTED)
    second = await make_quote(database, org.east_rep1, opp, QuoteStatus.SENT)
    response = await _move(client, org.east_rep1.headers, f"quotes/{second.id}", "accepted")
    assert problem(response, 409, "conflict")["reason"] == "only_accepted_quote"


async def test_moves_back_need_a_note_and_lost_needs_a_reason(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    opp = await make_opportunity(database, org.east_rep1, Stage.PROPOSAL)
    path = f"opportunities/{opp.id}"
    problem(await _move(client, org.east_rep1.headers, path, "lead"), 422, "validation_error")
    problem(
        await _move(client, org.east_rep1.headers, path, "lost", note="Gone quiet"),
        422,
        "validation_error",
    )
    back = await _move(client, org.east_rep1.headers, path, "lead", note="Budget reset")
    assert back.json()["stage"] == "lead"
    lost = await _move(
        client, org.east_rep1.headers, path, "lost", note="Chose a rival", lost_reason="competitor"
    )
    assert (lost.json()["stage"], lost.json()["lost_reason"]) == ("lost", "competitor")


async def test_a_lost_opportunity_reopens_where_it_was_lost(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    opp = await make_opportunity(database, org.east_rep1, Stage.NEEDS_ANALYSIS)
    path = f"opportunities/{opp.id}"
    await _move(
        client, org.east_rep1.headers, path, "lost", note="No budget", lost_reason="no_budget"
    )
    options = (
        await client.get(f"{API}/{path}/transitions", headers=org.east_manager.headers)
    ).json()
    open_now = [o["to"] for o in options if o["blocked_by"] is None]
    assert open_now == ["needs_analysis"]
    assert (
        await client.get(f"{API}/{path}/transitions", headers=org.east_rep1.headers)
    ).json() == []
    wrong = await _move(client, org.east_manager.headers, path, "proposal")
    assert problem(wrong, 409, "conflict")["reason"] == "reopens_to_lost_stage"
    reopened = await _move(client, org.east_manager.headers, path, "needs_analysis")
    assert (reopened.json()["stage"], reopened.json()["lost_reason"]) == ("needs_analysis", None)


async def test_two_concurrent_moves_cannot_both_win(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    opp = await make_opportunity(database, org.east_rep1, Stage.LEAD)
    path = f"opportunities/{opp.id}"
    # The same move twice: whichever runs second finds it already made (409) or loses the
    # versioned update (412).
    results = await asyncio.gather(
        _move(client, org.east_rep1.headers, path, "contacted"),
        _move(client, org.east_manager.headers, path, "contacted"),
    )
    codes = sorted(r.status_code for r in results)
    assert codes[0] == 200 and codes[1] in (409, 412), [r.text for r in results]
    # Different moves from the same version the clients read: only one wins.
    headers = [
        {**org.east_rep1.headers, "If-Match": '"2"'},
        {**org.east_manager.headers, "If-Match": '"2"'},
    ]
    results = await asyncio.gather(
        _move(client, headers[0], path, "needs_analysis"),
        _move(client, headers[1], path, "lost", note="Dup", lost_reason="other"),
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 412], [r.text for r in results]
    history = (await client.get(f"{API}/{path}/history", headers=org.director.headers)).json()
    assert len(history["items"]) == 2
    final = (await client.get(f"{API}/{path}", headers=org.director.headers)).json()
    assert final["stage"] == history["items"][-1]["to_state"]
    assert final["version"] == 3


async def test_reassigning_a_customer_moves_its_open_opportunities(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    opp = await make_opportunity(database, org.east_rep1, Stage.PROPOSAL)
    won = await make_opportunity(database, org.east_rep1, Stage.WON)
    assert won.customer_id != opp.customer_id
    response = await client.post(
        f"{API}/customers/{opp.customer_id}/assign",
        headers=org.east_manager.headers,
        json={"owner_id": str(org.east_rep2.id)},
    )
    assert response.status_code == 200, response.text
    moved = await client.get(f"{API}/opportunities/{opp.id}", headers=org.east_rep2.headers)
    assert moved.status_code == 200 and moved.json()["owner_id"] == str(org.east_rep2.id)
    problem(
        await client.get(f"{API}/opportunities/{opp.id}", headers=org.east_rep1.headers),
        404,
        "not_found",
    )


async def test_products_are_the_directors(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    body = {"sku": "PUMP-1", "name": "Pump", "list_price": "1200.50"}
    problem(
        await client.post(f"{API}/products", json=body, headers=org.east_manager.headers),
        403,
        "forbidden",
    )
    created = await client.post(f"{API}/products", json=body, headers=org.director.headers)
    assert created.status_code == 201 and created.json()["list_price"] == "1200.50"
    dup = await client.post(f"{API}/products", json=body, headers=org.director.headers)
    assert problem(dup, 409, "conflict")["reason"] == "duplicate_sku"
    product_id = created.json()["id"]
    await client.patch(
        f"{API}/products/{product_id}", json={"is_active": False}, headers=org.director.headers
    )
    listed = await client.get(f"{API}/products", headers=org.east_rep1.headers)
    assert listed.json()["items"] == []
    problem(
        await client.get(f"{API}/products/{product_id}", headers=org.east_rep1.headers),
        404,
        "not_found",
    )
    assert Decimal(created.json()["list_price"]) == Decimal("1200.50")
