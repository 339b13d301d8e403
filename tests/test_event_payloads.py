"""Events are typed: every name recorded is one of ``EventType``, and every event's ``data``
is what the OpenAPI document's ``webhooks`` say it is (``app.event_payloads``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from app.db import Database
from app.event_payloads import PAYLOADS
from app.models.platform import EventType
from app.seed import DEMO_PASSWORD, seed_demo

API = "/api/v1"
APP = Path(__file__).resolve().parent.parent / "app"
# Where the code names an event: events.record(session, "x.y", ...), a helper's
# _record(session, "x.y", ...), a workflow Rule(event="x.y") or default_event="x.y".
_NAMED = re.compile(
    r'(?:record\(\s*session,\s*|event="|default_event="|_EVENT = ")"?([a-z_]+\.[a-z_]+)"'
)


def test_every_event_the_code_names_is_an_event_type() -> None:
    named = {m for f in APP.rglob("*.py") for m in _NAMED.findall(f.read_text())}
    assert len(named) > 60
    assert named - {e.value for e in EventType} == set()
    assert {e.value for e in EventType} - named == set(), "an event type nothing records"


def _members(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


async def _login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post(
        f"{API}/auth/token", data={"username": email, "password": DEMO_PASSWORD}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _feed(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"after": after} if after else {})}
        page = (await client.get(f"{API}/events", params=params, headers=headers)).json()
        events += page["items"]
        if not page["items"] or page["next_cursor"] is None:
            return events
        after = page["next_cursor"]


async def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code < 300, response.text
    return response.json() if response.content else {}


async def test_each_events_data_is_its_documented_payload(
    client: httpx.AsyncClient, database: Database
) -> None:
    """The demo organisation (written through the services) and a round of changes through
    the API record most event types; each one's data has exactly the documented members
    and validates against the documented schema."""
    assert await seed_demo(database)
    director = await _login(client, "director@example.com")
    rep = await _login(client, "east.rep1@example.com")
    customers = (await client.get(f"{API}/customers", headers=rep)).json()["items"]
    customer = customers[0]["id"]
    contact = await _ok(
        await client.post(f"{API}/customers/{customer}/contacts", json={"name": "Li"}, headers=rep)
    )
    await _ok(
        await client.patch(f"{API}/contacts/{contact['id']}", json={"title": "CTO"}, headers=rep)
    )
    await _ok(await client.delete(f"{API}/contacts/{contact['id']}", headers=rep))
    follow_up = await _ok(
        await client.post(
            f"{API}/follow-ups",
            json={
                "customer_id": customer,
                "kind": "call",
                "status": "done",
                "occurred_at": "2026-01-05T08:00:00Z",
                "summary": "Called",
            },
            headers=rep,
        )
    )
    await _ok(await client.delete(f"{API}/follow-ups/{follow_up['id']}", headers=rep))
    opportunity = await _ok(
        await client.post(
            f"{API}/opportunities", json={"customer_id": customer, "title": "Pumps"}, headers=rep
        )
    )
    moves = (
        await client.get(f"{API}/opportunities/{opportunity['id']}/transitions", headers=rep)
    ).json()
    move = next(m for m in moves if not m["needs"] and m["blocked_by"] is None)
    await _ok(
        await client.post(
            f"{API}/opportunities/{opportunity['id']}/transitions",
            json={"to": move["to"], "note": "First call went well"},
            headers=rep,
        )
    )
    await _ok(await client.delete(f"{API}/opportunities/{opportunity['id']}", headers=director))
    region = await _ok(await client.post(f"{API}/regions", json={"name": "West"}, headers=director))
    await _ok(await client.delete(f"{API}/regions/{region['id']}", headers=director))
    webhook = await _ok(
        await client.post(
            f"{API}/webhooks",
            json={"url": "https://hooks.example.com/in", "events": ["*"]},
            headers=director,
        )
    )
    await _ok(
        await client.post(
            f"{API}/webhooks/{webhook['id']}/rotate-secret", json={}, headers=director
        )
    )
    await _ok(await client.delete(f"{API}/webhooks/{webhook['id']}", headers=director))
    await _ok(
        await client.patch(f"{API}/settings", json={"dormant_after_days": 200}, headers=director)
    )
    target = (await client.get(f"{API}/targets", headers=director)).json()["items"][0]
    await _ok(await client.delete(f"{API}/targets/{target['id']}", headers=director))
    await _ok(await client.delete(f"{API}/customers/{customers[-1]['id']}", headers=director))

    events = await _feed(client, director)
    seen: set[str] = set()
    for event in events:
        model = PAYLOADS[EventType(event["type"])]
        assert set(event["data"]) == _members(model), event["type"]
        model.model_validate(event["data"])
        seen.add(event["type"])
    for expected in (
        "customer.created",
        "customer.deleted",
        "contact.deleted",
        "follow_up.deleted",
        "opportunity.created",
        "opportunity.deleted",
        "payment.received",
        "delivery.created",
        "complaint.created",
        "quote.created",
        "contract.created",
        "region.deleted",
        "target.deleted",
        "settings.updated",
        "webhook.secret_rotated",
        "webhook.deleted",
    ):
        assert expected in seen, expected
    assert any(e["data"].get("from") for e in events if e["type"] == "opportunity.stage_changed")
    assert len(seen) >= 30, sorted(seen)
