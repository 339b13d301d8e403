"""Department settings (director, validated, versioned, audited) and targets with their
permissions: the director sets company and region targets, a manager their reps'."""

from __future__ import annotations

import httpx

from app.db import Database
from tests.factories import Org, make_org, problem

SETTINGS = "/api/v1/settings"
TARGETS = "/api/v1/targets"


async def test_only_the_director_reads_and_changes_settings(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    for who in (org.east_manager, org.east_rep1):
        problem(await client.get(SETTINGS, headers=who.headers), 403, "forbidden")
        problem(
            await client.patch(SETTINGS, json={"dormant_after_days": 90}, headers=who.headers),
            403,
            "forbidden",
        )
    current = await client.get(SETTINGS, headers=org.director.headers)
    # The version leads the ETag; the deployment's currency and time zone follow it.
    assert current.status_code == 200 and current.headers["etag"].startswith('"0-')
    body = current.json()
    assert (
        body["contract_review_hours"] == 9 and body["kpi_weights"]["revenue_attainment"] == "0.60"
    )
    assert body["complaint_slas"]["critical"] == {"acknowledge_hours": 1, "resolve_hours": 24}


async def test_settings_changes_are_validated_versioned_and_audited(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    headers = org.director.headers
    bad_weights = {
        "kpi_weights": {
            "revenue_attainment": "0.5",
            "growth": "0.2",
            "market_share": "0.1",
            "satisfaction": "0.1",
        }
    }
    body = problem(
        await client.patch(SETTINGS, json=bad_weights, headers=headers), 422, "validation_error"
    )
    assert "add up to 1" in body["detail"]
    disordered = {
        "commission": {
            "low_attainment_below": "0.6",
            "low_rate": "0.05",
            "base_rate": "0.03",
            "above_target_rate": "0.05",
        }
    }
    problem(await client.patch(SETTINGS, json=disordered, headers=headers), 422, "validation_error")
    problem(
        await client.patch(
            SETTINGS, json={"business_hours": {"time_zone": "Mars/Olympus"}}, headers=headers
        ),
        422,
        "validation_error",
    )
    problem(
        await client.patch(SETTINGS, json={"nonsense": 1}, headers=headers), 422, "validation_error"
    )
    assert (await client.get(SETTINGS, headers=headers)).headers["etag"].startswith('"0-')

    good = {
        "kpi_weights": {
            "revenue_attainment": "0.5",
            "growth": "0.3",
            "market_share": "0.1",
            "satisfaction": "0.1",
        },
        "dormant_after_days": 90,
    }
    changed = await client.patch(SETTINGS, json=good, headers={**headers, "If-Match": '"0"'})
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"].startswith('"1-') and changed.json()["dormant_after_days"] == 90
    assert changed.json()["contract_review_hours"] == 9  # untouched sections stay
    stale = await client.patch(
        SETTINGS, json={"dormant_after_days": 30}, headers={**headers, "If-Match": '"0"'}
    )
    problem(stale, 412, "version_conflict")
    audit = (
        await client.get(
            "/api/v1/audit-log", params={"entity_type": "department_settings"}, headers=headers
        )
    ).json()["items"]
    assert [entry["action"] for entry in audit] == ["create"]
    assert audit[0]["after"]["data"]["dormant_after_days"] == 90


async def _target(client: httpx.AsyncClient, who: object, **body: object) -> httpx.Response:
    payload = {"period": "2026-Q3", "metric": "signed_revenue", "value": "100000.00", **body}
    return await client.post(TARGETS, json=payload, headers=who.headers)  # type: ignore[attr-defined]


async def test_who_sets_which_target(client: httpx.AsyncClient, database: Database) -> None:
    org: Org = await make_org(database)
    assert (await _target(client, org.director, scope="company")).status_code == 201
    region = await _target(client, org.director, scope="region", scope_id=str(org.east.id))
    assert region.status_code == 201
    problem(
        await _target(client, org.east_manager, scope="region", scope_id=str(org.east.id)),
        403,
        "forbidden",
    )
    problem(
        await _target(client, org.east_manager, scope="rep", scope_id=str(org.north_rep.id)),
        403,
        "forbidden",
    )
    rep = await _target(client, org.east_manager, scope="rep", scope_id=str(org.east_rep1.id))
    assert rep.status_code == 201, rep.text
    problem(
        await _target(client, org.east_rep1, scope="rep", scope_id=str(org.east_rep1.id)),
        403,
        "forbidden",
    )
    duplicate = await _target(client, org.director, scope="rep", scope_id=str(org.east_rep1.id))
    assert problem(duplicate, 409, "conflict")["reason"] == "duplicate_target"
    problem(
        await _target(client, org.director, scope="company", scope_id=str(org.east.id)),
        422,
        "validation_error",
    )
    problem(await _target(client, org.director, scope="region"), 422, "validation_error")
    problem(
        await _target(client, org.director, scope="company", period="2026-Q5"),
        422,
        "validation_error",
    )

    mine = (await client.get(TARGETS, headers=org.east_rep1.headers)).json()["items"]
    assert [t["scope"] for t in mine] == ["rep"]
    assert (await client.get(TARGETS, headers=org.east_rep2.headers)).json()["items"] == []
    north = (await client.get(TARGETS, headers=org.north_manager.headers)).json()["items"]
    assert [t["scope"] for t in north] == ["company"]
    problem(
        await client.get(f"{TARGETS}/{rep.json()['id']}", headers=org.north_manager.headers),
        404,
        "not_found",
    )
    east = (
        await client.get(f"{TARGETS}/{region.json()['id']}", headers=org.east_manager.headers)
    ).json()
    assert (east["allocated"], east["allocation"]) == ("100000.00", 1.0)
    changed = await client.patch(
        f"{TARGETS}/{rep.json()['id']}",
        json={"value": "150000.00"},
        headers={**org.east_manager.headers, "If-Match": '"1"'},
    )
    assert changed.status_code == 200 and changed.json()["value"] == "150000.00"
    events = (
        await client.get(
            "/api/v1/events", params={"type": "target.set"}, headers=org.director.headers
        )
    ).json()["items"]
    assert len(events) == 4


async def test_market_sizes_are_the_directors(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    body = {"region_id": str(org.east.id), "period": "2026-Q3", "value": "1500000.00"}
    problem(
        await client.post("/api/v1/market-sizes", json=body, headers=org.east_manager.headers),
        403,
        "forbidden",
    )
    first = await client.post("/api/v1/market-sizes", json=body, headers=org.director.headers)
    assert first.status_code == 201, first.text
    again = await client.post(
        "/api/v1/market-sizes", json={**body, "value": "1600000.00"}, headers=org.director.headers
    )
    assert again.status_code == 200 and again.json()["value"] == "1600000.00"
    east = (await client.get("/api/v1/market-sizes", headers=org.east_manager.headers)).json()
    assert [m["value"] for m in east["items"]] == ["1600000.00"]
    north = (await client.get("/api/v1/market-sizes", headers=org.north_manager.headers)).json()
    assert north["items"] == []
    problem(
        await client.get("/api/v1/market-sizes", headers=org.east_rep1.headers), 403, "forbidden"
    )
