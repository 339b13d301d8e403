"""Scale benchmark: customer and follow-up lists at 10,000 and at 1,000,000 customers.

    python -m bench.scale [--sizes 10000,1000000] [--rebuild] [--explain]

Each size gets its own PostgreSQL database (``salesdesk_scale_<size>``): one department of
10 regions, each with a manager and 50 reps, and the customers shared among the reps with
five done follow-ups each (so 5,000,000 follow-ups at full size), loaded in PostgreSQL with
``generate_series``. A database of the right size from an earlier run is reused.

The same requests then go through the app in this process (httpx over ASGI, so the figures
are the app's own time: routing, scope, SQL, serialisation) as a rep, a manager and the
director: the first and a deep page of customers, a name search, the region, class and
overdue filters, one customer's follow-ups and the scoped follow-up list. Each figure is the
median of ``--repeat`` requests after warming up; the table ends with the large/small ratio
(goal ≤ 2×). ``--explain`` prints PostgreSQL's plan of each list query at the largest size.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.bulk import (
    SECRET_KEY,
    WORDS,
    access_token,
    database_exists,
    database_url,
    insert_customers,
    insert_users,
    log,
    migrate,
    plain_dsn,
    recreate_database,
)

FOLLOW_UPS_EACH = 5
REGIONS, REPS_PER_REGION = 10, 50
TABLES = ("customers", "follow_ups")
OUT = Path(__file__).resolve().parent.parent / "var" / "bench"


# Building -----------------------------------------------------------------------------


async def _loaded_size(url: str) -> int | None:
    """The number of customers in the database, or None when it is not a finished build."""
    if not await database_exists(url):
        return None
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        done = await conn.fetchval("SELECT to_regclass('bench_scale_done') IS NOT NULL")
        return int(await conn.fetchval("SELECT n FROM bench_scale_done")) if done else None
    finally:
        await conn.close()


async def _secondary_indexes(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(name, definition) of the indexes of the bulk tables other than primary keys."""
    rows = await conn.fetch(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
         WHERE i.tablename = ANY($1::text[]) AND i.schemaname = 'public'
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                            WHERE c.conname = i.indexname AND c.contype IN ('p', 'u'))
        """,
        list(TABLES),
    )
    return [(r["indexname"], r["indexdef"]) for r in rows]


async def _build(url: str, size: int) -> None:
    name = url.rsplit("/", 1)[-1]
    log(f"building {name}: {size:,} customers, {size * FOLLOW_UPS_EACH:,} follow-ups")
    await recreate_database(url)
    await asyncio.to_thread(migrate, url)
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        people = await insert_users(conn, REGIONS, REPS_PER_REGION, "scale")
        # Bulk loading: foreign keys are right by construction, and indexes are cheaper to
        # build once over the finished tables than to grow row by row.
        indexes = await _secondary_indexes(conn)
        for name, _ in indexes:
            await conn.execute(f'DROP INDEX "{name}"')
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("SET maintenance_work_mem = '512MB'")
        started = time.monotonic()
        await insert_customers(conn, size, people["rep"], FOLLOW_UPS_EACH)
        await conn.execute("SET session_replication_role = DEFAULT")
        log(f"  rows in {time.monotonic() - started:.0f} s; building {len(indexes)} indexes")
        for _, definition in indexes:
            await conn.execute(definition)
        await conn.execute("VACUUM ANALYZE")
        await conn.execute(f"CREATE TABLE bench_scale_done AS SELECT {size}::bigint AS n")
        log(f"  done in {time.monotonic() - started:.0f} s")
    finally:
        await conn.close()


# Measuring ----------------------------------------------------------------------------


@dataclass
class Probe:
    actor: str  # rep, manager, director
    name: str
    path: str


@dataclass
class Scope:
    tokens: dict[str, str]
    region: uuid.UUID
    customer: dict[str, uuid.UUID]  # a customer in each actor's scope
    deep_cursor: dict[str, str]


async def _scope(url: str) -> Scope:
    """Who asks (a rep and the manager of the rep's region, the director) and what about."""
    from app.pagination import _encode_cursor

    conn = await asyncpg.connect(plain_dsn(url))
    try:
        rep = await conn.fetchrow(
            "SELECT id, role, region_id FROM users WHERE role = 'rep' ORDER BY email LIMIT 1"
        )
        manager = await conn.fetchrow(
            "SELECT id, role, region_id FROM users WHERE role = 'regional_manager' "
            "AND region_id = $1",
            rep["region_id"],
        )
        director = await conn.fetchrow(
            "SELECT id, role, region_id FROM users WHERE role = 'director'"
        )
        scopes = {
            "rep": ("owner_id = $1", rep["id"]),
            "manager": ("region_id = $1", rep["region_id"]),
            "director": ("$1::uuid IS NULL", None),
        }
        customer: dict[str, uuid.UUID] = {}
        deep: dict[str, str] = {}
        for actor, (clause, value) in scopes.items():
            count = await conn.fetchval(f"SELECT count(*) FROM customers WHERE {clause}", value)
            row = await conn.fetchrow(
                f"SELECT id, created_at FROM customers WHERE {clause} "
                "ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1",
                value,
                count // 2,
            )
            customer[actor] = row["id"]
            deep[actor] = _encode_cursor("-created_at", row["created_at"], row["id"])
    finally:
        await conn.close()
    tokens = {
        name: access_token(user["id"], user["role"], user["region_id"])
        for name, user in (("rep", rep), ("manager", manager), ("director", director))
    }
    return Scope(tokens, rep["region_id"], customer, deep)


def _probes(scope: Scope) -> list[Probe]:
    common = WORDS[7]  # in 1 name of 50
    probes = []
    for actor in ("rep", "manager", "director"):
        c = "/api/v1/customers?limit=50"
        probes += [
            Probe(actor, "customers: first page", c),
            Probe(actor, "customers: deep page", f"{c}&cursor={scope.deep_cursor[actor]}"),
            Probe(actor, f"customers: q={common}", f"{c}&q={common}"),
            Probe(actor, "customers: q=rare (no match)", f"{c}&q=Zhuhai"),
            Probe(actor, "customers: region_id", f"{c}&region_id={scope.region}"),
            Probe(actor, "customers: classification=A", f"{c}&classification=A"),
            Probe(actor, "customers: overdue=true", f"{c}&overdue=true"),
            Probe(
                actor,
                "follow-ups: customer_id",
                f"/api/v1/follow-ups?limit=50&customer_id={scope.customer[actor]}",
            ),
            Probe(actor, "follow-ups: scoped list", "/api/v1/follow-ups?limit=50"),
        ]
    return probes


async def _measure(url: str, repeat: int, explain: bool) -> dict[tuple[str, str], float]:
    import httpx
    from sqlalchemy import event

    from app.config import get_settings
    from app.db import Database, create_engine
    from app.main import create_app

    scope = await _scope(url)
    database = Database(create_engine(get_settings(), url))
    app = create_app(get_settings(), database)
    captured: list[tuple[str, Any]] = []

    @event.listens_for(database.engine.sync_engine, "before_cursor_execute")
    def _capture(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        if "LIMIT" in statement and (
            "FROM customers" in statement or "FROM follow_ups" in statement
        ):
            captured.append((statement, params))

    timings: dict[tuple[str, str], float] = {}
    plans: list[str] = []
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for probe in _probes(scope):
                headers = {"Authorization": f"Bearer {scope.tokens[probe.actor]}"}
                for _ in range(3):
                    response = await client.get(probe.path, headers=headers)
                    if response.status_code != 200:
                        raise SystemExit(f"{probe.path}: {response.status_code} {response.text}")
                samples = []
                for _ in range(repeat):
                    began = time.perf_counter()
                    await client.get(probe.path, headers=headers)
                    samples.append((time.perf_counter() - began) * 1000)
                timings[(probe.actor, probe.name)] = statistics.median(samples)
                if explain and captured:
                    statement, params = captured[-1]
                    plans.append(await _plan(url, probe, statement, params))
                captured.clear()
    finally:
        await database.dispose()
    if plans:
        path = OUT / f"scale-plans-{url.rsplit('_', 1)[-1]}.txt"
        path.write_text("\n\n".join(plans))
        log(f"plans: {path}")
    return timings


async def _plan(url: str, probe: Probe, statement: str, params: Any) -> str:
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *params)
    finally:
        await conn.close()
    plan = "\n".join(r[0] for r in rows)
    return f"== {probe.actor}: {probe.name}\n{statement}\n{plan}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--explain", action="store_true", help="plans at the largest size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    os.environ["SALESDESK_SECRET_KEY"] = SECRET_KEY
    os.environ.setdefault("SALESDESK_LOG_LEVEL", "WARNING")
    os.environ.setdefault("SALESDESK_RATE_LIMIT_ENABLED", "false")
    os.environ.setdefault("SALESDESK_RUN_WORKER", "false")
    OUT.mkdir(parents=True, exist_ok=True)

    results: dict[int, dict[tuple[str, str], float]] = {}
    for size in sizes:
        url = database_url(f"salesdesk_scale_{size}")
        if args.rebuild or asyncio.run(_loaded_size(url)) != size:
            asyncio.run(_build(url, size))
        else:
            log(f"reusing salesdesk_scale_{size}")
        # Migrations added since the build (new indexes) apply to the loaded data.
        migrate(url)
        log(f"measuring {size:,} customers (load average {_loadavg()})")
        results[size] = asyncio.run(_measure(url, args.repeat, args.explain and size == max(sizes)))

    small, large = min(sizes), max(sizes)
    print()
    print(
        f"Scale: median of {args.repeat} requests in-process, ms; load average {_loadavg()}; "
        f"{small:,} vs {large:,} customers ({FOLLOW_UPS_EACH} follow-ups each)"
    )
    print(f"{'actor':<9} {'request':<30} {small:>9,} {large:>11,} {'ratio':>6}")
    worst = 0.0
    for key, small_ms in results[small].items():
        large_ms = results[large][key]
        ratio = large_ms / small_ms
        worst = max(worst, ratio)
        flag = "" if ratio <= 2 else "  > 2×"
        print(f"{key[0]:<9} {key[1]:<30} {small_ms:9.1f} {large_ms:11.1f} {ratio:6.2f}{flag}")
    print(f"worst ratio {worst:.2f}× (goal ≤ 2×)")


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


if __name__ == "__main__":
    main()
