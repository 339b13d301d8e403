"""What the load and scale benchmarks share: their databases and the bulk data in them.

Bulk rows are written with ``INSERT … SELECT generate_series`` in PostgreSQL itself, so a
million customers take seconds, not the hours the services would. They look like what the
services write (normalised name and phone keys, cadence-based due dates, spread over two
years, physically in creation order), without events or audit rows.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from sqlalchemy.engine import make_url

PG_SERVER = os.environ.get("SALESDESK_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
SECRET_KEY = "bench-secret-key-that-is-long-enough-for-hs256-signing"

# Name parts: a search for a word finds ~1/len(WORDS) of the customers, as a real word would.
CITIES = [
    "Shanghai", "Beijing", "Hangzhou", "Suzhou", "Nanjing", "Wuxi", "Ningbo", "Tianjin",
    "Qingdao", "Dalian", "Xiamen", "Fuzhou", "Wuhan", "Chengdu", "Chongqing", "Shenzhen",
    "Guangzhou", "Jinan", "Hefei", "Changsha",
]  # fmt: skip
WORDS = [
    "Lianhua", "Hengtai", "Jinxin", "Huamei", "Xinda", "Tianhe", "Yongsheng", "Dongfang",
    "Hongxing", "Zhongke", "Ruifeng", "Baolong", "Minsheng", "Kangda", "Huaxia", "Shengli",
    "Jiahe", "Fuxing", "Changjiang", "Taishan", "Guanghua", "Xinghe", "Anda", "Wanfeng",
    "Lixin", "Haitian", "Dingsheng", "Hongda", "Jinlong", "Meida", "Sanhe", "Tongda",
    "Weiye", "Xiangyun", "Yida", "Zhengda", "Huatai", "Jiayuan", "Kaiyuan", "Longteng",
    "Mingyang", "Nanfang", "Pingan", "Qianjin", "Rongsheng", "Shunfeng", "Tiancheng",
    "Xinyuan", "Yuanda", "Zhongxin",
]  # fmt: skip
SUFFIXES = [
    "Trading Co.", "Textiles Ltd.", "Machinery Co.", "Pharma Inc.", "Logistics Co.",
    "Electronics Ltd.", "Foods Co.", "Chemicals Ltd.", "Packaging Co.", "Steel Works",
]  # fmt: skip
INDUSTRIES = ["textiles", "machinery", "pharma", "logistics", "electronics", "food", "chemicals"]
FOLLOW_UP_KINDS = ["call", "email", "visit", "meeting", "call"]
SPAN_DAYS = 730  # customers were created over the last two years
_POSITIVE = 0x7FFFFFFFFFFFFFFF  # a hash & this is a non-negative bigint


def plain_dsn(url: str) -> str:
    """asyncpg's DSN for a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(name: str) -> str:
    return f"{PG_SERVER.rstrip('/')}/{name}"


async def recreate_database(url: str) -> None:
    parsed = make_url(url)
    admin = await asyncpg.connect(plain_dsn(str(parsed.set(database="postgres"))))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()


async def database_exists(url: str) -> bool:
    parsed = make_url(url)
    admin = await asyncpg.connect(plain_dsn(str(parsed.set(database="postgres"))))
    try:
        found = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", parsed.database
        )
        return found is not None
    finally:
        await admin.close()


def migrate(url: str) -> None:
    """``alembic upgrade head`` on ``url`` (outside any event loop)."""
    from app.migrations import upgrade

    upgrade(url)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass(frozen=True)
class Owner:
    id: uuid.UUID
    region_id: uuid.UUID | None


def _sql_array(values: Sequence[str]) -> str:
    quoted = ",".join("'" + value.replace("'", "''") + "'" for value in values)
    return f"ARRAY[{quoted}]::text[]"


# Customer number $1 + g (g = 0, 1, …) of $2 in total is created at
# now − SPAN_DAYS × (1 − n/total): oldest first, so the heap is in creation order.
_CUSTOMERS_SQL = f"""
WITH src AS (
    SELECT n,
           now() - make_interval(secs => {SPAN_DAYS} * 86400.0 * (1 - n::float8 / $2::bigint))
             AS born,
           -- Independent pseudo-random draws per customer (owners and attributes must not
           -- be functions of one another, as n mod k would make them).
           hashint8extended(n, 1) & {_POSITIVE} AS h1,
           hashint8extended(n, 2) & {_POSITIVE} AS h2,
           (hashint8extended(n, 3) & {_POSITIVE}) % 100 AS mix,
           ((hashint8extended(n, 4) & {_POSITIVE}) % 1000) / 1000.0 AS lag
      FROM generate_series($1::bigint, $1::bigint + $3::bigint - 1) AS n
), named AS (
    SELECT src.*,
           ({_sql_array(CITIES)})[1 + h2 % {len(CITIES)}] || ' '
             || ({_sql_array(WORDS)})[1 + (h2 / 100) % {len(WORDS)}] || ' '
             || ({_sql_array(SUFFIXES)})[1 + (h2 / 10000) % {len(SUFFIXES)}] || ' '
             || lpad(n::text, 7, '0') AS name,
           CASE WHEN mix < 10 THEN 'A' WHEN mix < 40 THEN 'B' ELSE 'C' END AS class,
           ($4::uuid[])[1 + h1 % cardinality($4::uuid[])] AS owner_id,
           ($5::uuid[])[1 + h1 % cardinality($5::uuid[])] AS region_id
      FROM src
), timed AS (
    SELECT named.*,
           -- The last of the follow-ups a random part (lag) of age / count before now, so
           -- some young customers are overdue too; the others evenly spaced since creation.
           born + (now() - born) * ((1 - lag / greatest($6::int, 1))::float8) AS last_seen
      FROM named
), inserted AS (
    INSERT INTO customers (
        id, version, created_at, updated_at, name, name_key, industry, phone, phone_key,
        source, classification, suggested_classification, classification_overridden, status,
        owner_id, region_id, last_follow_up_at, follow_up_due_at)
    SELECT gen_random_uuid(), 1, born, last_seen, name,
           lower(regexp_replace(name, '[^A-Za-z0-9]+', '', 'g')),
           ({_sql_array(INDUSTRIES)})[1 + (h2 / 1000000) % {len(INDUSTRIES)}],
           '+86 400 ' || lpad(n::text, 8, '0'), '86400' || lpad(n::text, 8, '0'),
           'web', class, class, false, CASE WHEN mix % 7 = 0 THEN 'prospect' ELSE 'active' END,
           owner_id, region_id,
           CASE WHEN $6::int > 0 THEN last_seen END,
           COALESCE(CASE WHEN $6::int > 0 THEN last_seen END, born)
             + make_interval(days => CASE class WHEN 'A' THEN 7 WHEN 'B' THEN 14 ELSE 30 END)
      FROM timed
    RETURNING id, created_at, owner_id, region_id, last_follow_up_at
)
INSERT INTO follow_ups (
    id, version, created_at, updated_at, customer_id, owner_id, customer_owner_id,
    customer_region_id, kind, status, occurred_at, summary, outcome)
SELECT gen_random_uuid(), 1, at, at, c.id, c.owner_id, c.owner_id, c.region_id,
       ({_sql_array(FOLLOW_UP_KINDS)})[1 + k % {len(FOLLOW_UP_KINDS)}], 'done', at,
       'Discussed the next order.', 'Positive.'
  FROM inserted c
 CROSS JOIN LATERAL generate_series(1, $6::int) AS k
 CROSS JOIN LATERAL (
       -- Steps of age / $6 back from the last follow-up.
       SELECT c.last_follow_up_at
              - (c.last_follow_up_at - c.created_at) * (($6::int - k)::float8 / $6::int)
       ) AS t(at)
"""


async def insert_customers(
    conn: asyncpg.Connection,
    total: int,
    owners: Sequence[Owner],
    follow_ups_each: int,
    *,
    first: int = 0,
    chunk: int = 100_000,
) -> None:
    """``total`` customers shared at random among ``owners``, each with ``follow_ups_each``
    done follow-ups by its owner; customer numbers start at ``first``."""
    owner_ids = [o.id for o in owners]
    region_ids = [o.region_id for o in owners]
    done = 0
    while done < total:
        size = min(chunk, total - done)
        await conn.execute(
            _CUSTOMERS_SQL,
            first + done,
            first + total,
            size,
            owner_ids,
            region_ids,
            follow_ups_each,
        )
        done += size
        if total > chunk:
            log(f"  {done:,} customers, {done * follow_ups_each:,} follow-ups")


async def insert_users(
    conn: asyncpg.Connection, regions: int, reps_per_region: int, tag: str
) -> dict[str, list[Owner]]:
    """Regions with a manager and reps each, and a director: {'director': [...], ...}."""
    people: dict[str, list[Owner]] = {"director": [], "regional_manager": [], "rep": []}
    director = uuid.uuid4()
    await conn.execute(
        "INSERT INTO users (id, version, created_at, updated_at, email, full_name, role, "
        "is_active) VALUES ($1, 1, now(), now(), $2, 'Bench Director', 'director', true)",
        director,
        f"director@{tag}.example",
    )
    people["director"].append(Owner(director, None))
    for r in range(regions):
        region = uuid.uuid4()
        await conn.execute(
            "INSERT INTO regions (id, version, created_at, updated_at, name) "
            "VALUES ($1, 1, now(), now(), $2)",
            region,
            f"{tag.title()} region {r + 1}",
        )
        for role, count in (("regional_manager", 1), ("rep", reps_per_region)):
            for i in range(count):
                user = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO users (id, version, created_at, updated_at, email, full_name, "
                    "role, region_id, is_active) VALUES ($1, 1, now(), now(), $2, $3, $4, $5, "
                    "true)",
                    user,
                    f"{role}.{r + 1}.{i + 1}@{tag}.example",
                    f"Bench {role} {r + 1}.{i + 1}",
                    role,
                    region,
                )
                people[role].append(Owner(user, region))
    return people


def access_token(user_id: uuid.UUID, role: str, region_id: uuid.UUID | None) -> str:
    """A signed access token, as /auth/token would give, valid long enough for a bench run."""
    from app.security import create_access_token

    token, _ = create_access_token(SECRET_KEY, user_id, role, region_id, minutes=24 * 60)
    return token


# The tables the benchmarks' writes churn: their dead rows are vacuumed between runs.
CHURNED_TABLES = (
    "opportunities",
    "state_changes",
    "customers",
    "follow_ups",
    "events",
    "audit_log",
)


async def reset_opportunities(url: str, ids: Sequence[str | uuid.UUID]) -> None:
    """Put the stage-move benchmark's opportunities back to ``lead``, then vacuum.

    Only the moved ones are updated, and the churned tables are vacuumed and analysed: this
    machine's PostgreSQL runs without autovacuum, and resetting all 15,000 on every run had
    left 370,000 dead rows in ``opportunities`` (8,000 pages for 15,000 rows), which turned
    the summary's pipeline query from a few milliseconds into 20. A deployment's autovacuum
    keeps a table near its live size; so does this, between runs.
    """
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        await conn.execute(
            "UPDATE opportunities SET stage = 'lead'"
            " WHERE id = ANY($1::uuid[]) AND stage <> 'lead'",
            [uuid.UUID(str(i)) for i in ids],
        )
        for table in CHURNED_TABLES:
            await conn.execute(f"VACUUM (ANALYZE) {table}")
    finally:
        await conn.close()


def bench_env(url: str) -> dict[str, str]:
    """The environment a served app runs with: production defaults, our database and key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESDESK_")}
    env.update(
        SALESDESK_DATABASE_URL=url,
        SALESDESK_SECRET_KEY=SECRET_KEY,
        SALESDESK_SEED_DEMO="false",
        # One user drives all the load: the limiter still runs (its cost counts) but must
        # not turn the benchmark into a measure of 429s.
        SALESDESK_RATE_LIMIT_PER_USER="1000000/second",
        SALESDESK_RATE_LIMIT_PER_IP="1000000/second",
    )
    return env
