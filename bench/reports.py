"""Reports at scale: load a department's worth of years into PostgreSQL and time each report.

Run ``.venv/bin/python -m bench.reports`` (or ``make bench-reports``). The first run creates the
database ``salesdesk_bench`` (``SALESDESK_BENCH_DATABASE_URL`` picks another), migrates it and
loads 1,000,000 contracts, 3,000,000 payments, 2,000,000 opportunities with their stage
history and the rest, all generated inside PostgreSQL (``INSERT … SELECT generate_series``);
later runs find the data and only time the reports. ``--reload`` starts over, ``--scale 0.01``
loads a hundredth for a quick look.

The reports are timed through the real path: HTTP requests as the director, in process
(httpx over ASGI), against the app built on that database.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("SALESDESK_SECRET_KEY", "bench-secret-key-that-is-long-enough-for-hs256")
os.environ.setdefault("SALESDESK_LOG_LEVEL", "WARNING")
os.environ.setdefault("SALESDESK_LOG_JSON", "false")
os.environ.setdefault("SALESDESK_RUN_WORKER", "false")
# ``python bench/reports.py`` puts bench/ on the path, not the project.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx
from sqlalchemy import event
from sqlalchemy.engine import make_url

from app.config import get_settings
from app.db import Database, create_engine
from app.main import create_app
from app.migrations import upgrade
from app.periods import parse_period
from app.security import create_access_token
from app.services.sql import REPORT_SETTINGS

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/salesdesk_bench"
API = "/api/v1/performance"

REGIONS = 8
REPS_PER_REGION = 10
# Full scale; --scale multiplies every count but the people.
CUSTOMERS = 200_000
OPPORTUNITIES = 2_000_000  # every even one is won and has a contract
PAYMENTS_PER_CONTRACT = 3
COMPLAINTS = 60_000
FOLLOW_UPS = 400_000

# Three years of business, START to END, seen from NOW: opportunities are created from 100 days
# before START (so that contracts are signed from START on) to END; of those of the last 200
# days, half the ones not won are still open. Contracts are signed and payments received up to NOW.
START = "TIMESTAMPTZ '2023-10-01 00:00:00+00'"
END = "TIMESTAMPTZ '2026-10-01 00:00:00+00'"
NOW = "TIMESTAMPTZ '2026-11-20 00:00:00+00'"
SPAN_SECONDS = 1096 * 86400
OPPORTUNITY_SPAN_SECONDS = (1096 + 100) * 86400
LAST_PAYMENT_DAY = "DATE '2026-11-20'"
OPEN = "ARRAY['lead','contacted','needs_analysis','proposal','negotiation']"


def _md5_uuid(text: str) -> uuid.UUID:
    """What PostgreSQL's ``md5(text)::uuid`` gives: the loader's ids are made that way."""
    return uuid.UUID(hashlib.md5(text.encode()).hexdigest())


def region_id(index: int) -> uuid.UUID:
    return _md5_uuid(f"region-{index}")


def rep_id(index: int) -> uuid.UUID:
    return _md5_uuid(f"user-rep-{index}")


DIRECTOR_ID = _md5_uuid("user-director")


@dataclass(frozen=True)
class Sizes:
    customers: int
    opportunities: int
    complaints: int
    follow_ups: int

    @classmethod
    def at(cls, scale: float) -> Sizes:
        def n(full: int) -> int:
            return max(int(full * scale), 1000)

        opportunities = n(OPPORTUNITIES) // 2 * 2
        return cls(n(CUSTOMERS), opportunities, n(COMPLAINTS), n(FOLLOW_UPS))

    @property
    def contracts(self) -> int:
        return self.opportunities // 2

    @property
    def payments(self) -> int:
        return self.contracts * PAYMENTS_PER_CONTRACT


def _owner(customer: str) -> str:
    """A customer's rep, from its number: customers are dealt round the regions, then reps."""
    return (
        f"md5('user-rep-' || (({customer}) % {REGIONS} * {REPS_PER_REGION}"
        f" + ({customer}) / {REGIONS} % {REPS_PER_REGION}))::uuid"
    )


def _region(customer: str) -> str:
    return f"md5('region-' || (({customer}) % {REGIONS}))::uuid"


def load_statements(sizes: Sizes) -> list[tuple[str, str]]:
    """(what, SQL) in loading order. Ids are ``md5(kind-n)::uuid`` where another table
    refers to them, so every table is one set-based statement."""
    setup = "TIMESTAMPTZ '2023-01-01 00:00:00+00'"
    n_opp = sizes.opportunities
    step = OPPORTUNITY_SPAN_SECONDS / n_opp
    return [
        (
            "regions",
            f"""INSERT INTO regions (id, version, created_at, updated_at, name)
            SELECT md5('region-' || r)::uuid, 1, {setup}, {setup}, 'Region ' || (r + 1)
            FROM generate_series(0, {REGIONS - 1}) r""",
        ),
        (
            "users",
            f"""INSERT INTO users (id, version, created_at, updated_at, email, full_name, role,
                region_id, is_active)
            SELECT md5('user-director')::uuid, 1, {setup}, {setup}, 'director@bench.example',
                'Bench Director', 'director', NULL::uuid, true
            UNION ALL
            SELECT md5('user-manager-' || r)::uuid, 1, {setup}, {setup},
                'manager' || r || '@bench.example', 'Manager ' || (r + 1), 'regional_manager',
                md5('region-' || r)::uuid, true
            FROM generate_series(0, {REGIONS - 1}) r
            UNION ALL
            SELECT md5('user-rep-' || n)::uuid, 1, {setup}, {setup}, 'rep' || n || '@bench.example',
                'Rep ' || lpad((n + 1)::text, 3, '0'), 'rep',
                md5('region-' || (n / {REPS_PER_REGION}))::uuid, true
            FROM generate_series(0, {REGIONS * REPS_PER_REGION - 1}) n""",
        ),
        (
            "customers",
            f"""INSERT INTO customers (id, version, created_at, updated_at, name, name_key, source,
                classification, suggested_classification, classification_overridden, status,
                owner_id, region_id)
            SELECT md5('cust-' || cu)::uuid, 1, ts, ts, 'Customer ' || cu, 'customer ' || cu,
                'referral', cls, cls, false, 'active', {_owner("cu")}, {_region("cu")}
            FROM generate_series(0, {sizes.customers - 1}) cu,
            LATERAL (SELECT {START} - interval '400 days' + cu * interval '2 minutes' AS ts,
                (ARRAY['A', 'B', 'C', 'C'])[cu % 4 + 1] AS cls) x""",
        ),
        (
            # Customers come in over the years: opportunity o picks among the first
            # 30% + 70% × o/n customers, so every quarter has its new customers.
            "opportunities",
            f"""INSERT INTO opportunities (id, version, created_at, updated_at, customer_id, title,
                amount, expected_close_date, probability, source, stage, owner_id, region_id,
                lost_reason, lost_from_stage, won_at, closed_at, deleted_at)
            SELECT md5('opp-' || o)::uuid, 1, created, created + cycle, md5('cust-' || cu)::uuid,
                'Opportunity ' || o, amount, (created + cycle + interval '10 days')::date,
                CASE WHEN o % 10 = 3 THEN 35 END, 'referral', stage, {_owner("cu")},
                {_region("cu")},
                CASE WHEN stage = 'lost'
                    THEN (ARRAY['price', 'competitor', 'no_budget', 'no_decision'])[o % 4 + 1]
                END,
                CASE WHEN stage = 'lost' THEN ({OPEN})[m + 1] END,
                CASE WHEN stage = 'won' THEN created + cycle END,
                CASE WHEN stage IN ('won', 'lost') THEN created + cycle END,
                CASE WHEN o % 2 = 1 AND o % 101 = 51 THEN created + cycle END
            FROM generate_series(0, {n_opp - 1}) o,
            LATERAL (SELECT
                abs(hashint4(o)::bigint)
                    % ({sizes.customers}::bigint * (3 * {n_opp} + 7 * o::bigint) / (10 * {n_opp}))
                    AS cu,
                {START} - interval '100 days' + make_interval(secs => o * {step}) AS created,
                (o / 2) % 5 AS m,
                (5000 + abs(hashint4(-o)) % 500 * 1000)::numeric(14, 2) AS amount) a,
            -- Closed within 7–97 days, and by NOW.
            LATERAL (SELECT make_interval(
                days => 7 + (o * 31) % least(90, ({NOW}::date - created::date) - 8),
                hours => o % 24) AS cycle) c,
            LATERAL (SELECT CASE
                WHEN o % 2 = 0 THEN 'won'
                WHEN created >= {END} - interval '200 days' AND o / 2 % 2 = 0 THEN ({OPEN})[m + 1]
                ELSE 'lost' END AS stage) s""",
        ),
        (
            # One step forward at a time, as the workflow allows: a won opportunity has five
            # changes, a lost one its forward steps and the loss, an open one its steps so far.
            "state_changes",
            f"""INSERT INTO state_changes (id, entity_type, entity_id, from_state, to_state,
                actor_id, at, owner_id, region_id, from_state_at, next_state_at)
            SELECT gen_random_uuid(), 'opportunity', op.id, ({OPEN})[i],
                CASE WHEN i = op.n AND op.stage IN ('won', 'lost') THEN op.stage
                    ELSE ({OPEN})[i + 1] END,
                op.owner_id, op.created_at + (op.updated_at - op.created_at) * i / op.n,
                op.owner_id, op.region_id,
                op.created_at + (op.updated_at - op.created_at) * (i - 1) / op.n,
                -- Moved on when the next step was forward (a lost one's last step is not).
                CASE WHEN i < op.n AND NOT (i + 1 = op.n AND op.stage = 'lost')
                    THEN op.created_at + (op.updated_at - op.created_at) * (i + 1) / op.n END
            FROM (SELECT id, stage, owner_id, region_id, created_at, updated_at,
                    CASE stage WHEN 'won' THEN 5
                        WHEN 'lost' THEN array_position({OPEN}, lost_from_stage)
                        ELSE array_position({OPEN}, stage) - 1 END AS n
                FROM opportunities) op,
            LATERAL generate_series(1, op.n) i
            ORDER BY 7""",
        ),
        (
            "quotes",
            f"""INSERT INTO quotes (id, version, created_at, updated_at, opportunity_id, status,
                subtotal, total, discount_percent)
            SELECT md5('quo-' || k)::uuid, 1, op.won_at - interval '5 days', op.won_at, op.id,
                'accepted', op.amount, op.amount, 0
            FROM generate_series(0, {sizes.contracts - 1}) k
            JOIN opportunities op ON op.id = md5('opp-' || (2 * k))::uuid""",
        ),
        (
            # One in 32 cancelled before signing, one in 32 approved and not yet signed, one in
            # 32 terminated; the rest signed, running or completed by age.
            "contracts",
            f"""INSERT INTO contracts (id, version, created_at, updated_at, number, opportunity_id,
                quote_id, customer_id, owner_id, region_id, amount, paid_amount, status,
                director_review, approved_at, signed_at, completed_at, terminated_at,
                termination_reason, cancelled_at)
            SELECT md5('con-' || k)::uuid, 1, op.won_at, coalesce(signed, op.won_at),
                'B-' || lpad(k::text, 9, '0'), op.id, md5('quo-' || k)::uuid, op.customer_id,
                op.owner_id, op.region_id, op.amount, 0, status, false,
                CASE WHEN status <> 'cancelled' THEN op.won_at + interval '1 day' END, signed,
                CASE WHEN status = 'completed' THEN signed + interval '300 days' END,
                CASE WHEN status = 'terminated' THEN signed + interval '60 days' END,
                CASE WHEN status = 'terminated' THEN 'Customer went bankrupt' END,
                CASE WHEN status = 'cancelled' THEN op.won_at + interval '2 days' END
            FROM generate_series(0, {sizes.contracts - 1}) k
            JOIN opportunities op ON op.id = md5('opp-' || (2 * k))::uuid,
            LATERAL (SELECT CASE WHEN k % 32 IN (5, 21) THEN NULL
                WHEN op.won_at + make_interval(days => k % 20) < {NOW}
                    THEN op.won_at + make_interval(days => k % 20, hours => 3)
                ELSE op.won_at + interval '3 hours' END AS signed) s,
            LATERAL (SELECT CASE
                WHEN k % 32 = 5 THEN 'cancelled'
                WHEN k % 32 = 21 THEN 'approved'
                WHEN k % 32 = 13 THEN 'terminated'
                WHEN signed < {END} - interval '365 days' THEN 'completed'
                WHEN signed < {END} - interval '90 days' THEN 'in_progress'
                ELSE 'signed' END AS status) t
            ORDER BY k""",
        ),
        (
            # Three instalments a contract, 30 days apart; an unsigned contract's three go to
            # the contract before it, so every payment belongs to a signed contract.
            "payments",
            f"""INSERT INTO payments (id, version, created_at, updated_at, contract_id, owner_id,
                region_id, amount, received_on, method)
            SELECT gen_random_uuid(), 1, day + time '02:00', day + time '02:00', c.id, c.owner_id,
                c.region_id, round(c.amount / 3, 2), day, 'bank_transfer'
            FROM (SELECT p, (p / 3) % 32 IN (5, 21) AS moved,
                    CASE WHEN (p / 3) % 32 IN (5, 21) THEN p / 3 - 1 ELSE p / 3 END AS k
                FROM generate_series(0, {sizes.payments - 1}) p) g
            JOIN contracts c ON c.id = md5('con-' || g.k)::uuid,
            LATERAL (SELECT least(
                (c.signed_at AT TIME ZONE 'Asia/Shanghai')::date + (g.p % 3 + 1) * 30
                    + (g.p % 17) + CASE WHEN g.moved THEN 90 ELSE 0 END,
                {LAST_PAYMENT_DAY}) AS day) d
            ORDER BY day""",
        ),
        (
            # Older complaints are closed with a score; some were acknowledged late.
            "complaints",
            f"""INSERT INTO complaints (id, version, created_at, updated_at, customer_id, channel,
                category, severity, description, received_at, received_by_id, assignee_id,
                owner_id, region_id, status, acknowledge_due_at, resolve_due_at,
                acknowledged_at, resolved_at, closed_at, resolution, satisfaction)
            SELECT gen_random_uuid(), 1, recv, recv, md5('cust-' || cu)::uuid, 'phone',
                (ARRAY['product_quality', 'delivery', 'service', 'billing'])[q % 4 + 1],
                (ARRAY['low', 'medium', 'high', 'critical'])[q % 4 + 1], 'Complaint ' || q,
                recv, {_owner("cu")}, {_owner("cu")}, {_owner("cu")}, {_region("cu")},
                CASE WHEN old THEN 'closed'
                    ELSE (ARRAY['received', 'acknowledged', 'investigating'])[q % 3 + 1] END,
                recv + interval '4 hours', recv + interval '72 hours',
                CASE WHEN old OR q % 3 > 0 THEN recv + make_interval(hours => q % 6) END,
                CASE WHEN old THEN recv + make_interval(days => q % 5) END,
                CASE WHEN old THEN recv + make_interval(days => q % 5 + 1) END,
                CASE WHEN old THEN 'repair' END,
                CASE WHEN old THEN 1 + q % 5 END
            FROM generate_series(0, {sizes.complaints - 1}) q,
            LATERAL (SELECT abs(hashint4(q)::bigint) % {sizes.customers} AS cu,
                {START} + make_interval(secs => q * {SPAN_SECONDS / sizes.complaints}) AS recv) a,
            LATERAL (SELECT recv < {END} - interval '30 days' AS old) b""",
        ),
        (
            # A sixth are return visits with a satisfaction score.
            "follow_ups",
            f"""INSERT INTO follow_ups (id, version, created_at, updated_at, customer_id, owner_id,
                customer_owner_id, customer_region_id, kind, status, occurred_at, summary,
                satisfaction)
            SELECT gen_random_uuid(), 1, at, at, md5('cust-' || cu)::uuid, {_owner("cu")},
                {_owner("cu")}, {_region("cu")}, kind,
                'done', at, 'Spoke to the buyer',
                CASE WHEN kind = 'return_visit' THEN 1 + (f / 6) % 5 END
            FROM generate_series(0, {sizes.follow_ups - 1}) f,
            LATERAL (SELECT abs(hashint4(f)::bigint) % {sizes.customers} AS cu,
                {START} + make_interval(secs => f * {SPAN_SECONDS / sizes.follow_ups}) AS at,
                (ARRAY['call', 'email', 'visit', 'meeting', 'return_visit', 'other'])[f % 6 + 1]
                    AS kind) a""",
        ),
    ]


def target_statements(label: str) -> list[tuple[str, str]]:
    """Targets near each rep's and region's actual (70–130%), and market sizes, for ``label``."""
    period = parse_period(label)
    start, end = period.utc_bounds(get_settings().time_zone)
    now = "now()"
    factor = "(0.7 + (('x' || substr(md5(id::text), 1, 4))::bit(16)::int % 7) * 0.1)"
    revenue = f"""SELECT owner_id, region_id, sum(amount) AS value FROM contracts
        WHERE signed_at >= '{start.isoformat()}' AND signed_at < '{end.isoformat()}'
            AND status NOT IN ('cancelled', 'terminated') GROUP BY owner_id, region_id"""
    collected = f"""SELECT c.owner_id, c.region_id, sum(p.amount) AS value FROM payments p
        JOIN contracts c ON c.id = p.contract_id
        WHERE p.received_on >= '{period.start}' AND p.received_on < '{period.end}'
        GROUP BY c.owner_id, c.region_id"""
    by_rep = " UNION ALL ".join(
        f"SELECT '{metric}' AS metric, owner_id, region_id, value FROM ({query}) {metric}"
        for metric, query in (("signed_revenue", revenue), ("collected_payments", collected))
    )
    insert = """INSERT INTO targets (id, version, created_at, updated_at, period, scope, scope_id,
        metric, value, region_id)"""
    return [
        ("targets", f"DELETE FROM targets WHERE period = '{label}'"),
        ("market sizes", f"DELETE FROM market_sizes WHERE period = '{label}'"),
        (
            "targets",
            f"""{insert}
            SELECT gen_random_uuid(), 1, {now}, {now}, '{label}', 'rep', owner_id, metric,
                round(value * {factor.replace("id::text", "owner_id::text")}, 2), region_id
            FROM ({by_rep}) r
            UNION ALL
            SELECT gen_random_uuid(), 1, {now}, {now}, '{label}', 'region', region_id, metric,
                round(sum(value) * 0.95, 2), region_id
            FROM ({by_rep}) r GROUP BY region_id, metric
            UNION ALL
            SELECT gen_random_uuid(), 1, {now}, {now}, '{label}', 'company', NULL, metric,
                round(sum(value) * 0.9, 2), NULL
            FROM ({by_rep}) r GROUP BY metric
            UNION ALL
            SELECT gen_random_uuid(), 1, {now}, {now}, '{label}', 'rep', id, 'new_customers',
                20, region_id
            FROM users WHERE role = 'rep'""",
        ),
        (
            "market sizes",
            f"""INSERT INTO market_sizes (id, version, created_at, updated_at, region_id, period,
                value)
            SELECT gen_random_uuid(), 1, {now}, {now}, region_id, '{label}',
                round(sum(value) * 8, 2)
            FROM ({revenue}) r GROUP BY region_id""",
        ),
    ]


LOADED_TABLES = (
    "regions",
    "users",
    "customers",
    "opportunities",
    "state_changes",
    "quotes",
    "contracts",
    "payments",
    "complaints",
    "follow_ups",
    "targets",
    "market_sizes",
)


def _connect_args(url: str, database: str | None = None) -> dict[str, Any]:
    parsed = make_url(url)
    return {
        "host": parsed.host,
        "port": parsed.port or 5432,
        "user": parsed.username,
        "password": parsed.password,
        "database": database or parsed.database,
    }


async def ensure_database(url: str, *, recreate: bool) -> None:
    admin = await asyncpg.connect(**_connect_args(url, "postgres"))
    try:
        name = make_url(url).database
        if recreate:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def loaded_meta(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(**_connect_args(url))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value text)"
        )
        return {r["key"]: r["value"] for r in await conn.fetch("SELECT key, value FROM bench_meta")}
    finally:
        await conn.close()


async def load(url: str, sizes: Sizes, scale: float, label: str) -> float:
    """Fill the empty, migrated database; the seconds it took."""
    conn = await asyncpg.connect(**_connect_args(url))
    began = time.perf_counter()
    try:
        # The rows are consistent by construction: skip the per-row foreign-key triggers.
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute("SET work_mem = '256MB'")
        # Rows go in faster without the secondary indexes; they are built again afterwards
        # from their own definitions, so the schema stays the one the migrations made.
        indexes = await conn.fetch(
            """SELECT indexname, indexdef FROM pg_indexes
            WHERE schemaname = 'public' AND tablename = ANY($1::text[])
                AND indexname NOT IN (SELECT conname FROM pg_constraint)""",
            list(LOADED_TABLES),
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        for what, sql in [*load_statements(sizes), *target_statements(label)]:
            step = time.perf_counter()
            status = await conn.execute(sql)
            print(f"  {what:<14} {status:<22} {time.perf_counter() - step:7.1f} s", flush=True)
        step = time.perf_counter()
        for index in indexes:
            await conn.execute(index["indexdef"])
        print(f"  {'indexes':<14} {len(indexes):<22} {time.perf_counter() - step:7.1f} s")
        step = time.perf_counter()
        for table in LOADED_TABLES:
            await conn.execute(f"VACUUM (ANALYZE) {table}")
        print(f"  {'vacuum':<14} {'':<22} {time.perf_counter() - step:7.1f} s", flush=True)
        seconds = time.perf_counter() - began
        await conn.executemany(
            "INSERT INTO bench_meta (key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [("scale", str(scale)), ("period", label), ("load_seconds", f"{seconds:.0f}")],
        )
        return seconds
    finally:
        await conn.close()


async def row_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(**_connect_args(url))
    try:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in LOADED_TABLES}
    finally:
        await conn.close()


@dataclass
class Report:
    name: str
    path: str
    params: dict[str, str]


COMPANY_WIDE = ("(company)", "(regions)", "(all)")


def reports(label: str, region: uuid.UUID, rep: uuid.UUID) -> list[Report]:
    in_region = {"scope": "region", "scope_id": str(region)}
    return [
        Report("summary", f"{API}/summary", {"period": label, **in_region}),
        Report("leaderboard", f"{API}/leaderboard", {"period": label, "region_id": str(region)}),
        Report("funnel", f"{API}/funnel", {"period": label, **in_region}),
        Report("forecast", f"{API}/forecast", in_region),
        Report("commissions", f"{API}/commissions", {"period": label, "region_id": str(region)}),
        Report(
            "summary (rep)",
            f"{API}/summary",
            {"period": label, "scope": "rep", "scope_id": str(rep)},
        ),
        Report(
            "funnel (rep)", f"{API}/funnel", {"period": label, "scope": "rep", "scope_id": str(rep)}
        ),
        # The director's company-wide views: eight regions' worth, outside the 300 ms goal.
        Report("summary (company)", f"{API}/summary", {"period": label}),
        Report("leaderboard (regions)", f"{API}/leaderboard", {"period": label}),
        Report("funnel (company)", f"{API}/funnel", {"period": label}),
        Report("forecast (company)", f"{API}/forecast", {}),
        Report("commissions (all)", f"{API}/commissions", {"period": label}),
    ]


class StatementClock:
    """Wall time per SQL statement while on: what ``--statements`` prints, slowest first."""

    def __init__(self, database: Database) -> None:
        self.on = False
        self.times: dict[str, list[float]] = defaultdict(list)
        self.parameters: dict[str, Any] = {}
        engine = database.engine.sync_engine

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            conn.info["bench_started"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if self.on:
                started = conn.info.pop("bench_started", time.perf_counter())
                self.times[statement].append((time.perf_counter() - started) * 1000)
                self.parameters[statement] = parameters

    @contextmanager
    def measuring(self) -> Iterator[dict[str, list[float]]]:
        self.times = defaultdict(list)
        self.on = True
        try:
            yield self.times
        finally:
            self.on = False


async def time_reports(
    url: str,
    label: str,
    region: uuid.UUID,
    rep: uuid.UUID,
    runs: int,
    statements: bool = False,
    explain: bool = False,
    only: frozenset[str] = frozenset(),
    company: bool = False,
) -> list[tuple[str, list[float]]]:
    settings = get_settings()
    database = Database(create_engine(settings, url))
    clock = StatementClock(database)
    app = create_app(settings, database)
    token, _ = create_access_token(settings.signing_key(), DIRECTOR_ID, "director", None, 120)
    headers = {"Authorization": f"Bearer {token}"}
    results = []
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for report in reports(label, region, rep):
                if (only and report.name not in only) or (
                    not only and not company and report.name.endswith(COMPANY_WIDE)
                ):
                    continue
                warm = await client.get(report.path, params=report.params, headers=headers)
                if warm.status_code != 200:
                    raise SystemExit(f"{report.name}: {warm.status_code} {warm.text}")
                timings = []
                with clock.measuring() as per_statement:
                    for _ in range(runs):
                        began = time.perf_counter()
                        response = await client.get(
                            report.path, params=report.params, headers=headers
                        )
                        timings.append((time.perf_counter() - began) * 1000)
                        assert response.status_code == 200, response.text
                results.append((report.name, timings))
                print(f"  {report.name:<16} {_brief(report.name, warm.json())}", flush=True)
                if statements or explain:
                    _print_statements(per_statement, runs)
                if explain:
                    await _explain(database, clock, per_statement, runs)
    finally:
        await database.dispose()
    return results


def _brief(name: str, body: dict[str, Any]) -> str:
    """A figure or two from the answer, to see the report read real data."""
    if name.startswith("summary"):
        revenue = body["metrics"]["signed_revenue"]
        return (
            f"signed {revenue['actual']} (vs previous {revenue['growth_vs_previous']}), "
            f"collected {body['metrics']['collected_payments']['actual']}, "
            f"new customers {body['metrics']['new_customers']['actual']}, "
            f"won/lost {body['opportunities_won']}/{body['opportunities_lost']}, "
            f"kpi {body['kpi_score']}"
        )
    if name.startswith("leaderboard"):
        first = body["items"][0]
        return f"{len(body['items'])} ranked, first {first['name']} kpi {first['kpi_score']}"
    if name.startswith("funnel"):
        return "entered " + ", ".join(f"{s['stage']} {s['entered']}" for s in body["stages"])
    if name.startswith("forecast"):
        return f"{len(body['months'])} months, weighted {body['total_weighted']}"
    return f"{len(body['items'])} reps, first collected {body['items'][0]['collected']}"


async def _explain(
    database: Database, clock: StatementClock, per_statement: dict[str, list[float]], runs: int
) -> None:
    """PostgreSQL's plan of each statement that took 10 ms or more a run, slowest first, run
    with the reports' own transaction settings."""
    slow = [s for s, t in per_statement.items() if sum(t) / runs >= 10]
    for statement in sorted(slow, key=lambda k: -sum(per_statement[k])):
        async with database.engine.begin() as conn:
            await conn.exec_driver_sql(REPORT_SETTINGS.text)
            plan = await conn.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS) {statement}", clock.parameters[statement]
            )
            print("      " + " ".join(statement.split())[:150])
            print("\n".join(f"      {line}" for (line,) in plan.all()))


def _print_statements(per_statement: dict[str, list[float]], runs: int) -> None:
    total = sum(sum(t) for t in per_statement.values()) / runs
    print(f"    {len(per_statement)} statements, {total:.1f} ms a run in SQL; slowest:")
    slowest = sorted(per_statement.items(), key=lambda kv: -sum(kv[1]))[:5]
    for statement, times in slowest:
        text = " ".join(statement.split())[:150]
        print(f"    {sum(times) / runs:7.1f} ms ×{len(times) // runs}  {text}")


def table(results: list[tuple[str, list[float]]]) -> str:
    lines = ["| report | median ms | max ms |", "| --- | ---: | ---: |"]
    for name, timings in results:
        lines.append(f"| {name} | {statistics.median(timings):.0f} | {max(timings):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default=os.environ.get("SALESDESK_BENCH_DATABASE_URL", DEFAULT_URL)
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full data set")
    parser.add_argument("--period", default="2026-Q3", help="the quarter the reports are for")
    parser.add_argument("--region", type=int, default=0, help="which region (0–7)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs after one warm-up")
    parser.add_argument("--reload", action="store_true", help="drop the database and load anew")
    parser.add_argument("--load-only", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated report names to time")
    parser.add_argument("--company", action="store_true", help="also the company-wide reports")
    parser.add_argument("--statements", action="store_true", help="time each SQL statement too")
    parser.add_argument(
        "--explain", action="store_true", help="and EXPLAIN ANALYZE each report's slowest"
    )
    args = parser.parse_args(argv)
    url = args.url
    if not url.startswith("postgresql"):
        raise SystemExit("the benchmark runs on PostgreSQL")

    asyncio.run(ensure_database(url, recreate=args.reload))
    upgrade(url)  # also builds indexes added since the data was loaded
    meta = asyncio.run(loaded_meta(url))
    sizes = Sizes.at(args.scale)
    if "load_seconds" in meta and float(meta["scale"]) != args.scale:
        raise SystemExit(f"loaded at scale {meta['scale']}; pass --reload to load anew")
    if "load_seconds" not in meta:
        if meta:
            raise SystemExit("a half-finished load is there; pass --reload")
        print(f"Loading {sizes} into {make_url(url).database} …", flush=True)
        seconds = asyncio.run(load(url, sizes, args.scale, args.period))
        print(f"Loaded in {seconds:.0f} s", flush=True)
    else:
        print(f"Data already loaded (scale {meta['scale']}, {meta['load_seconds']} s to load)")
        if meta.get("period") != args.period:
            asyncio.run(_targets_for(url, args.period))
    counts = asyncio.run(row_counts(url))
    print(", ".join(f"{name} {count:,}" for name, count in counts.items()))
    if args.load_only:
        return
    region = region_id(args.region)
    rep = rep_id(args.region * REPS_PER_REGION)
    print(f"Timing the reports for region {args.region + 1} and {args.period}, {args.runs} runs:")
    results = asyncio.run(
        time_reports(
            url,
            args.period,
            region,
            rep,
            args.runs,
            args.statements,
            args.explain,
            frozenset(filter(None, args.only.split(","))),
            args.company,
        )
    )
    print()
    print(table(results))


async def _targets_for(url: str, label: str) -> None:
    conn = await asyncpg.connect(**_connect_args(url))
    try:
        for _, sql in target_statements(label):
            await conn.execute(sql)
        await conn.execute("ANALYZE targets")
        await conn.execute("ANALYZE market_sizes")
        await conn.execute("UPDATE bench_meta SET value = $1 WHERE key = 'period'", label)
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
