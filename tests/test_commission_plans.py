"""Commission plans per year: a period uses its year's plan, and changing one year's plan
leaves every other year's commissions as they were."""

from __future__ import annotations

from typing import Any

import httpx

from app.db import Database
from app.models.performance import SettingsRecord
from app.services import department
from tests.factories import Org, make_org, problem

SETTINGS = "/api/v1/settings"
COMMISSIONS = "/api/v1/performance/commissions"


def plan(base_rate: str) -> dict[str, str]:
    return {
        "low_attainment_below": "0.60",
        "low_rate": "0.01",
        "base_rate": base_rate,
        "above_target_rate": "0.05",
    }


async def rates(client: httpx.AsyncClient, org: Org, *years: int) -> list[str]:
    """The base rate each year's commissions use, and that a rep without a target earns."""
    found = []
    for year in years:
        response = await client.get(
            COMMISSIONS, params={"period": f"{year}-Q2"}, headers=org.director.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        [rep] = [i for i in body["items"] if i["rep_id"] == str(org.east_rep1.id)]
        assert rep["tiers"][0]["rate"] == body["plan"]["base_rate"]
        found.append(body["plan"]["base_rate"])
    return found


async def test_changing_this_years_plan_keeps_last_years(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    this = department.today().year
    headers = org.director.headers
    initial = (await client.get(SETTINGS, headers=headers)).json()
    assert initial["commission"]["base_rate"] == "0.03" and initial["commission_plans"] == {}

    # The settings' `commission` is this year's plan.
    changed = await client.patch(SETTINGS, json={"commission": plan("0.04")}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["commission"]["base_rate"] == "0.04"
    assert await rates(client, org, this - 2, this - 1, this, this + 1) == [
        "0.03",
        "0.03",
        "0.04",
        "0.04",  # a year without its own plan keeps the latest earlier one
    ]

    # Last year's plan, set by year: this year's and the years before it stay.
    response = await client.patch(
        SETTINGS, json={"commission_plans": {str(this - 1): plan("0.02")}}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["commission"]["base_rate"] == "0.04"
    assert sorted(response.json()["commission_plans"]) == [str(this - 2), str(this - 1), str(this)]
    assert await rates(client, org, this - 3, this - 2, this - 1, this) == [
        "0.03",
        "0.03",
        "0.02",
        "0.04",
    ]


async def test_a_single_saved_plan_stays_last_years_when_this_years_changes(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    this = department.today().year
    # Settings saved with one plan for every year.
    async with database.session() as session, session.begin():
        session.add(SettingsRecord(id=department.SETTINGS_ID, data={"commission": plan("0.05")}))
    read = (await client.get(SETTINGS, headers=org.director.headers)).json()
    assert read["commission"]["base_rate"] == "0.05"
    assert await rates(client, org, this - 1, this) == ["0.05", "0.05"]

    response = await client.patch(
        SETTINGS, json={"commission": plan("0.04")}, headers=org.director.headers
    )
    assert response.status_code == 200, response.text
    assert await rates(client, org, this - 5, this - 1, this) == ["0.05", "0.05", "0.04"]


async def test_plans_by_year_are_validated_and_the_directors(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    for bad in (
        {"commission_plans": {"20x6": plan("0.03")}},
        {"commission_plans": {"2026": {**plan("0.03"), "low_rate": "0.04"}}},
    ):
        problem(
            await client.patch(SETTINGS, json=bad, headers=org.director.headers),
            422,
            "validation_error",
        )
    problem(
        await client.patch(
            SETTINGS,
            json={"commission_plans": {"2026": plan("0.03")}},
            headers=org.east_manager.headers,
        ),
        403,
        "forbidden",
    )
    assert (await client.get(SETTINGS, headers=org.director.headers)).json()[
        "commission_plans"
    ] == {}
