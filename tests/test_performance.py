"""Every figure of every report against hand-computed values for a small department.

The department works in Asia/Shanghai (UTC+8): 2026-Q3 runs from 2026-06-30T16:00Z to
2026-09-30T16:00Z, which the period-edge contracts below straddle on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.models.complaints import Complaint
from app.models.contracts import Contract, ContractStatus, Payment
from app.models.customers import FollowUp
from app.models.performance import MarketSize, Target, TargetScope
from app.models.pipeline import Opportunity, Stage
from app.models.platform import StateChange
from app.reads import Read
from app.services import department, figures
from app.services.reports import commission_tiers
from app.services.sql import for_reports
from tests.conftest import IS_POSTGRES
from tests.contract_helpers import make_contract
from tests.factories import Org, Person, make_org, problem
from tests.pipeline_helpers import make_opportunity

API = "/api/v1/performance"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def _contract(
    database: Database, owner: Person, list_price: str, status: ContractStatus, signed_at: str
) -> Contract:
    contract = await make_contract(database, owner, ContractStatus.SIGNED, list_price=list_price)
    async with database.session() as session, session.begin():
        row = await session.get_one(Contract, contract.id)
        row.status, row.signed_at = status, at(signed_at)
    return row


async def _pay(database: Database, contract: Contract, amount: str, on: date) -> None:
    async with database.session() as session, session.begin():
        session.add(
            Payment(
                contract_id=contract.id,
                owner_id=contract.owner_id,
                region_id=contract.region_id,
                amount=Decimal(amount),
                received_on=on,
                method="bank_transfer",
            )
        )


async def _opportunity(database: Database, owner: Person, stage: Stage, **fields: object) -> None:
    opp = await make_opportunity(database, owner, stage)
    async with database.session() as session, session.begin():
        row = await session.get_one(Opportunity, opp.id)
        for key, value in fields.items():
            setattr(row, key, value)


async def _target(
    database: Database,
    scope: str,
    scope_id: object,
    metric: str,
    value: str,
    region_id: object = None,
) -> None:
    async with database.session() as session, session.begin():
        session.add(
            Target(
                period="2026-Q3",
                scope=scope,
                scope_id=scope_id,
                metric=metric,
                value=Decimal(value),
                region_id=region_id,
            )
        )


@dataclass
class Department:
    org: Org
    contracts: dict[str, Contract]


@pytest.fixture
async def dept(database: Database) -> Department:
    org = await make_org(database)
    rep1, rep2, north = org.east_rep1, org.east_rep2, org.north_rep
    contracts = {
        "C1": await _contract(
            database, rep1, "50000.00", ContractStatus.SIGNED, "2026-07-10T02:00:00"
        ),
        # 2026-07-01 01:00 in Shanghai: inside Q3, though still June in UTC.
        "C2": await _contract(
            database, rep1, "25000.00", ContractStatus.IN_PROGRESS, "2026-06-30T17:00:00"
        ),
        # 2026-06-30 23:00 in Shanghai: Q2, though the UTC day is the same as C2's.
        "C3": await _contract(
            database, rep1, "10000.00", ContractStatus.SIGNED, "2026-06-30T15:00:00"
        ),
        "C4": await _contract(
            database, rep2, "40000.00", ContractStatus.TERMINATED, "2026-08-01T00:00:00"
        ),
        "C5": await _contract(
            database, north, "30000.00", ContractStatus.COMPLETED, "2025-07-15T00:00:00"
        ),
        # 2026-09-30 23:59 in Shanghai: the last minute of Q3.
        "C6": await _contract(
            database, north, "5000.00", ContractStatus.SIGNED, "2026-09-30T15:59:00"
        ),
    }
    await _pay(database, contracts["C1"], "30000.00", date(2026, 7, 20))
    await _pay(database, contracts["C1"], "20000.00", date(2026, 10, 1))
    await _pay(database, contracts["C2"], "50000.00", date(2026, 9, 30))
    await _pay(database, contracts["C6"], "10000.00", date(2026, 6, 30))

    await _opportunity(
        database,
        rep1,
        Stage.WON,
        amount=Decimal("10000.00"),
        created_at=at("2026-07-01T00:00:00"),
        won_at=at("2026-07-11T00:00:00"),
        closed_at=at("2026-07-11T00:00:00"),
    )
    await _opportunity(
        database, rep1, Stage.LOST, lost_reason="price", closed_at=at("2026-08-01T00:00:00")
    )
    await _opportunity(
        database, rep1, Stage.LOST, lost_reason="price", closed_at=at("2026-10-05T00:00:00")
    )
    await _opportunity(
        database,
        rep1,
        Stage.PROPOSAL,
        amount=Decimal("100000.00"),
        expected_close_date=date(2026, 8, 15),
    )
    await _opportunity(
        database,
        rep1,
        Stage.LEAD,
        amount=Decimal("40000.00"),
        probability=25,
        expected_close_date=date(2026, 9, 30),
    )
    await _opportunity(
        database,
        rep1,
        Stage.NEGOTIATION,
        amount=Decimal("1000000.00"),
        expected_close_date=date(2026, 10, 1),
    )

    customer_id = contracts["C1"].customer_id
    async with database.session() as session, session.begin():
        session.add(
            FollowUp(
                customer_id=customer_id,
                owner_id=rep1.id,
                customer_owner_id=rep1.id,
                customer_region_id=rep1.user.region_id,
                kind="return_visit",
                status="done",
                occurred_at=at("2026-08-01T00:00:00"),
                satisfaction=4,
            )
        )
        session.add(
            Complaint(
                customer_id=customer_id,
                channel="phone",
                category="service",
                severity="high",
                description="Late",
                received_at=at("2026-08-20T00:00:00"),
                received_by_id=rep1.id,
                assignee_id=rep1.id,
                owner_id=rep1.id,
                region_id=org.east.id,
                status="closed",
                acknowledge_due_at=at("2026-08-20T04:00:00"),
                resolve_due_at=at("2026-08-23T00:00:00"),
                acknowledged_at=at("2026-08-20T06:00:00"),
                resolved_at=at("2026-08-21T00:00:00"),
                closed_at=at("2026-09-01T00:00:00"),
                resolution="repair",
                satisfaction=2,
                root_cause="Roster",
                corrective_action="Second shift",
            )
        )
        session.add(
            MarketSize(region_id=org.east.id, period="2026-Q3", value=Decimal("1500000.00"))
        )

    await _target(database, "rep", rep1.id, "signed_revenue", "120000.00", org.east.id)
    await _target(database, "rep", rep1.id, "collected_payments", "100000.00", org.east.id)
    await _target(database, "rep", rep2.id, "signed_revenue", "60000.00", org.east.id)
    await _target(database, "rep", rep2.id, "collected_payments", "50000.00", org.east.id)
    await _target(database, "region", org.east.id, "signed_revenue", "150000.00", org.east.id)
    await _target(database, "company", None, "signed_revenue", "200000.00")
    return Department(org=org, contracts=contracts)


async def _summary(client: httpx.AsyncClient, who: Person, **params: str) -> dict:
    response = await client.get(
        f"{API}/summary", params={"period": "2026-Q3", **params}, headers=who.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_rep_summary(client: httpx.AsyncClient, dept: Department) -> None:
    rep1 = dept.org.east_rep1
    body = await _summary(client, rep1)
    assert (body["scope"], body["scope_id"]) == ("rep", str(rep1.id))
    revenue = body["metrics"]["signed_revenue"]
    assert revenue == {
        "actual": "150000.00",
        "target": "120000.00",
        "attainment": 1.25,
        "growth_vs_previous": 6.5,
        "growth_vs_last_year": None,
    }
    collected = body["metrics"]["collected_payments"]
    assert collected == {
        "actual": "80000.00",
        "target": "100000.00",
        "attainment": 0.8,
        "growth_vs_previous": None,
        "growth_vs_last_year": None,
    }
    assert body["metrics"]["new_customers"]["actual"] == "2.00"
    assert (body["opportunities_won"], body["opportunities_lost"], body["win_rate"]) == (1, 1, 0.5)
    assert body["avg_sales_cycle_days"] == 10.0
    assert (body["pipeline_value"], body["weighted_pipeline"]) == ("140000.00", "70000.00")
    assert body["avg_satisfaction"] == 3.0
    assert (body["complaints_received"], body["sla_breaches"]) == (1, 1)
    assert body["market_share"] is None
    # (0.6 × 1.25 + 0.2 × min(1 + 6.5, 1.5) + 0.1 × 3/5) ÷ 0.9: no market share for a rep.
    assert body["kpi_score"] == pytest.approx(1.2333, abs=1e-4)


async def test_region_and_company_summaries(client: httpx.AsyncClient, dept: Department) -> None:
    org = dept.org
    east = await _summary(client, org.east_manager)
    assert (east["scope"], east["scope_id"]) == ("region", str(org.east.id))
    assert east["metrics"]["signed_revenue"]["actual"] == "150000.00"
    assert east["metrics"]["signed_revenue"]["attainment"] == 1.0
    assert east["market_share"] == 0.1
    north = await _summary(client, org.director, scope="region", scope_id=str(org.north.id))
    assert north["metrics"]["signed_revenue"]["actual"] == "10000.00"
    assert north["metrics"]["signed_revenue"]["growth_vs_last_year"] == pytest.approx(-0.833333)
    assert (
        north["market_share"] is None and north["metrics"]["collected_payments"]["actual"] == "0.00"
    )
    company = await _summary(client, org.director)
    revenue = company["metrics"]["signed_revenue"]
    assert (revenue["actual"], revenue["attainment"]) == ("160000.00", 0.8)
    assert revenue["growth_vs_previous"] == 7.0
    assert revenue["growth_vs_last_year"] == pytest.approx(1.666667)
    assert company["metrics"]["new_customers"]["actual"] == "4.00"
    assert company["metrics"]["collected_payments"]["actual"] == "80000.00"


async def test_growth_with_a_zero_base_is_null(client: httpx.AsyncClient, dept: Department) -> None:
    body = await _summary(client, dept.org.east_rep2)
    assert body["metrics"]["signed_revenue"] == {
        "actual": "0.00",
        "target": "60000.00",
        "attainment": 0.0,
        "growth_vs_previous": None,
        "growth_vs_last_year": None,
    }
    assert body["win_rate"] is None and body["avg_sales_cycle_days"] is None
    assert body["kpi_score"] == 0.0


async def test_targets_report_their_allocation(client: httpx.AsyncClient, dept: Department) -> None:
    org = dept.org
    listed = (
        await client.get(
            "/api/v1/targets",
            params={"period": "2026-Q3", "scope": "region"},
            headers=org.director.headers,
        )
    ).json()["items"]
    assert [(t["value"], t["allocated"], t["allocation"]) for t in listed] == [
        ("150000.00", "180000.00", 1.2)
    ]


async def test_leaderboard_ranks_by_kpi(client: httpx.AsyncClient, dept: Department) -> None:
    org = dept.org
    response = await client.get(
        f"{API}/leaderboard", params={"period": "2026-Q3"}, headers=org.east_manager.headers
    )
    items = response.json()["items"]
    assert [(i["rank"], i["scope_id"]) for i in items] == [
        (1, str(org.east_rep1.id)),
        (2, str(org.east_rep2.id)),
    ]
    assert items[0]["signed_revenue"] == "150000.00"
    regions = (
        await client.get(
            f"{API}/leaderboard", params={"period": "2026-Q3"}, headers=org.director.headers
        )
    ).json()["items"]
    assert [i["name"] for i in regions] == ["East", "North"]


async def test_forecast_by_expected_close_month(
    client: httpx.AsyncClient, dept: Department
) -> None:
    body = (await client.get(f"{API}/forecast", headers=dept.org.east_rep1.headers)).json()
    assert [(m["month"], m["amount"], m["weighted"]) for m in body["months"]] == [
        ("2026-08", "100000.00", "60000.00"),
        ("2026-09", "40000.00", "10000.00"),
        ("2026-10", "1000000.00", "800000.00"),
    ]
    assert body["total_weighted"] == "870000.00"


async def test_commissions_show_their_working(client: httpx.AsyncClient, dept: Department) -> None:
    org = dept.org
    body = (
        await client.get(
            f"{API}/commissions", params={"period": "2026-Q3"}, headers=org.director.headers
        )
    ).json()
    by_rep = {item["rep_id"]: item for item in body["items"]}
    rep1 = by_rep[str(org.east_rep1.id)]
    assert (rep1["collected"], rep1["target"], rep1["attainment"]) == ("80000.00", "100000.00", 0.8)
    assert rep1["tiers"] == [
        {"tier": "up_to_target", "base": "80000.00", "rate": "0.03", "amount": "2400.00"}
    ]
    assert rep1["commission"] == "2400.00"
    rep2 = by_rep[str(org.east_rep2.id)]
    assert (rep2["tiers"][0]["tier"], rep2["commission"]) == ("below_threshold", "0.00")
    assert by_rep[str(org.north_rep.id)]["tiers"][0]["tier"] == "no_target"
    own = (
        await client.get(
            f"{API}/commissions", params={"period": "2026-Q3"}, headers=org.east_rep2.headers
        )
    ).json()
    assert [i["rep_id"] for i in own["items"]] == [str(org.east_rep2.id)]


def test_commission_tiers() -> None:
    plan = department.CommissionPlan()
    above = commission_tiers(plan, Decimal("130000.00"), Decimal("100000.00"))
    assert [(t.tier, t.base, t.amount) for t in above] == [
        ("up_to_target", Decimal("100000.00"), Decimal("3000.00")),
        ("above_target", Decimal("30000.00"), Decimal("1500.00")),
    ]
    low = commission_tiers(plan, Decimal("50000.00"), Decimal("100000.00"))
    assert [(t.tier, t.amount) for t in low] == [("below_threshold", Decimal("500.00"))]
    edge = commission_tiers(plan, Decimal("60000.00"), Decimal("100000.00"))
    assert [(t.tier, t.amount) for t in edge] == [("up_to_target", Decimal("1800.00"))]


async def test_funnel_conversion_and_days_in_stage(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    ids = []
    for _ in range(3):
        opp = await make_opportunity(database, rep, Stage.LEAD, needs_summary=None)
        ids.append(opp.id)
    for opp_id, stages in ((ids[0], ["contacted", "needs_analysis"]), (ids[1], ["contacted"])):
        for stage in stages:
            moved = await client.post(
                f"/api/v1/opportunities/{opp_id}/transitions",
                json={"to": stage},
                headers=rep.headers,
            )
            assert moved.status_code == 200, moved.text
    # Put the history on known days (all in 2026-Q4 in Shanghai).
    times = {
        ids[0]: ("2026-10-01", ["2026-10-03", "2026-10-08"]),
        ids[1]: ("2026-10-02", ["2026-10-06"]),
        ids[2]: ("2026-10-05", []),
    }
    async with database.session() as session, session.begin():
        for opp_id, (created, moves) in times.items():
            (await session.get_one(Opportunity, opp_id)).created_at = at(f"{created}T00:00:00")
            changes = (
                await session.scalars(
                    StateChange.__table__.select()
                    .where(StateChange.entity_id == opp_id)
                    .order_by(StateChange.at)
                )
            ).all()
            # Each change's stay began at the change before it, or at creation.
            for change_id, began, when in zip(changes, [created, *moves], moves, strict=False):
                change = await session.get_one(StateChange, change_id)
                change.from_state_at, change.at = at(f"{began}T00:00:00"), at(f"{when}T00:00:00")
    body = (
        await client.get(f"{API}/funnel", params={"period": "2026-Q4"}, headers=rep.headers)
    ).json()
    stages = {s["stage"]: s for s in body["stages"]}
    assert [(s["stage"], s["count"]) for s in body["stages"][:3]] == [
        ("lead", 1),
        ("contacted", 1),
        ("needs_analysis", 1),
    ]
    assert (stages["lead"]["entered"], stages["lead"]["advanced"]) == (3, 2)
    assert stages["lead"]["conversion"] == pytest.approx(0.666667)
    assert (stages["contacted"]["entered"], stages["contacted"]["conversion"]) == (2, 0.5)
    assert (stages["needs_analysis"]["entered"], stages["needs_analysis"]["conversion"]) == (1, 0.0)
    assert stages["lead"]["avg_days_in_stage"] == 3.0
    assert stages["contacted"]["avg_days_in_stage"] == 5.0
    assert stages["needs_analysis"]["avg_days_in_stage"] is None


async def test_scope_of_the_reports(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    rep_summary = f"{API}/summary?scope=rep&scope_id={org.east_rep1.id}"
    problem(await client.get(rep_summary, headers=org.east_rep2.headers), 404, "not_found")
    problem(await client.get(rep_summary, headers=org.north_manager.headers), 404, "not_found")
    assert (await client.get(rep_summary, headers=org.east_manager.headers)).status_code == 200
    problem(
        await client.get(f"{API}/summary?scope=company", headers=org.east_rep1.headers),
        403,
        "forbidden",
    )
    problem(
        await client.get(f"{API}/summary?scope=company", headers=org.east_manager.headers),
        403,
        "forbidden",
    )
    problem(
        await client.get(
            f"{API}/summary?scope=region&scope_id={org.east.id}", headers=org.north_manager.headers
        ),
        404,
        "not_found",
    )
    problem(await client.get(f"{API}/leaderboard", headers=org.east_rep1.headers), 403, "forbidden")
    problem(
        await client.get(f"{API}/summary?period=2026-13", headers=org.director.headers),
        422,
        "validation_error",
    )


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL's planner settings")
async def test_reports_plan_for_their_values_without_jit(database: Database) -> None:
    """The app's connections plan every statement for its values and without JIT;
    ``for_reports`` adds work_mem for its transaction only."""
    names = ("plan_cache_mode", "jit", "work_mem")

    async def current(session: AsyncSession) -> list[str]:
        return [(await session.execute(text(f"SHOW {name}"))).scalar_one() for name in names]

    async with database.session(write=False) as session:
        async with session.begin():
            before = await current(session)
            assert before[:2] == ["force_custom_plan", "off"] and before[2] != "32MB"
            await for_reports(session)
            assert await current(session) == ["force_custom_plan", "off", "32MB"]
        async with session.begin():
            assert await current(session) == before


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL's partial indexes and generic plans")
async def test_the_pipeline_figure_can_use_the_open_pipeline_index_in_a_generic_plan(
    database: Database,
) -> None:
    """The open stages are written into the statement (``services.sql.constant_in``): with
    them bound, a generic plan cannot prove the partial index's condition and scans instead
    (211 ms against 3 ms at two million opportunities)."""
    org = await make_org(database)
    statement = figures._pipeline_statement(TargetScope.REGION)
    params = {"scope_ids": [org.east.id], "start": date(2026, 7, 1), "end": date(2026, 10, 1)}
    async with database.session(write=False) as session, session.begin():
        connection = await session.connection()
        sql, args = Read(statement).sql_and_args(connection.dialect, params)
        literals = ", ".join(f"'{arg}'" for arg in args)
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        await session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        await session.execute(text(f"PREPARE pipeline AS {sql}"))
        plan = (await session.execute(text(f"EXPLAIN EXECUTE pipeline({literals})"))).scalars()
        text_plan = "\n".join(plan)
        await session.execute(text("DEALLOCATE pipeline"))
    # The region's or the owners' open-pipeline index: both have the open stages' condition.
    assert "_open on opportunities" in text_plan, text_plan
