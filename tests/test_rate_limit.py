"""Rate limits per user and per client IP (429 with Retry-After) and the login throttle.

Each test builds its own app from a ``Settings`` instance (the shared app has limits off)
and drives the limiters' clock by hand, so nothing here waits or depends on timing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import func, select

from app.config import EMBEDDED_DATABASE_URL
from app.db import Database
from app.main import create_app
from app.models.people import RefreshToken, Role
from app.ratelimit import Rate, RateLimits
from tests.factories import Person, client_for, make_settings, make_user, problem

ME = "/api/v1/auth/me"
TOKEN = "/api/v1/auth/token"
PASSWORD = "correct-horse-battery"
POSTGRES_URL = "postgresql+asyncpg://salesdesk@db.example:5432/salesdesk"


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_app(database: Database, clock: FakeClock, **overrides: Any) -> FastAPI:
    app = create_app(make_settings(**overrides), database)
    limits: RateLimits = app.state.rate_limits
    limits.use_clock(clock)
    return app


def limited(response: httpx.Response) -> int:
    """Assert a 429 problem with a request id; return its Retry-After in seconds."""
    problem(response, 429, "rate_limited")
    assert response.headers["x-request-id"]
    return int(response.headers["retry-after"])


async def me(client: httpx.AsyncClient, person: Person | None = None) -> httpx.Response:
    return await client.get(ME, headers=person.headers if person else None)


# Requests ----------------------------------------------------------------------------------


async def test_a_user_over_the_rate_gets_429_and_other_users_do_not(database: Database) -> None:
    clock = FakeClock()
    app = make_app(
        database,
        clock,
        rate_limit_enabled=True,
        rate_limit_per_user="3/second",
        rate_limit_per_ip="100/second",
    )
    alice = await make_user(database, Role.REP)
    bob = await make_user(database, Role.REP)
    async with client_for(app) as client:
        for _ in range(3):
            assert (await me(client, alice)).status_code == 200
        assert limited(await me(client, alice)) == 1
        # Bob shares Alice's address but not her allowance.
        for _ in range(3):
            assert (await me(client, bob)).status_code == 200
        assert limited(await me(client, bob)) == 1

        clock.advance(1)
        assert (await me(client, alice)).status_code == 200


async def test_retry_after_is_the_wait_until_a_request_is_allowed(database: Database) -> None:
    clock = FakeClock()
    app = make_app(database, clock, rate_limit_enabled=True, rate_limit_per_ip="2/minute")
    async with client_for(app) as client:
        assert (await me(client)).status_code == 401
        assert (await me(client)).status_code == 401
        assert limited(await me(client)) == 30

        clock.advance(29)
        assert limited(await me(client)) == 1  # refused requests are not counted
        clock.advance(1)
        assert (await me(client)).status_code == 401
        assert limited(await me(client)) == 30


async def test_unauthenticated_requests_are_limited_per_ip(database: Database) -> None:
    clock = FakeClock()
    app = make_app(database, clock, rate_limit_enabled=True, rate_limit_per_ip="3/second")
    rep = await make_user(database, Role.REP)
    async with client_for(app, "1.2.3.4") as first, client_for(app, "5.6.7.8") as second:
        for _ in range(3):
            problem(await first.get("/api/v1/customers"), 401, "unauthorized")
        assert limited(await first.get("/api/v1/customers")) == 1
        # The address is spent for everyone behind it, signed in or not.
        assert limited(await me(first, rep)) == 1
        problem(await second.get("/api/v1/customers"), 401, "unauthorized")
        assert (await me(second, rep)).status_code == 200


async def test_a_forged_token_counts_against_the_ip_only(database: Database) -> None:
    clock = FakeClock()
    app = make_app(
        database,
        clock,
        rate_limit_enabled=True,
        rate_limit_per_user="1/minute",
        rate_limit_per_ip="3/minute",
    )
    rep = await make_user(database, Role.REP)
    forged = {"Authorization": rep.headers["Authorization"][:-2] + "xx"}
    async with client_for(app) as client:
        problem(await client.get(ME, headers=forged), 401, "unauthorized")
        problem(await client.get(ME, headers=forged), 401, "unauthorized")
        assert (await me(client, rep)).status_code == 200
        assert limited(await client.get(ME, headers=forged)) == 20


async def test_health_and_metrics_are_never_limited(database: Database) -> None:
    clock = FakeClock()
    app = make_app(database, clock, rate_limit_enabled=True, rate_limit_per_ip="1/minute")
    async with client_for(app) as client:
        for _ in range(5):
            for path in ("/healthz", "/readyz", "/metrics"):
                assert (await client.get(path)).status_code == 200, path
        assert (await me(client)).status_code == 401
        assert limited(await me(client)) == 60


async def test_health_is_never_limited_under_a_root_path_either(database: Database) -> None:
    app = make_app(database, FakeClock(), rate_limit_enabled=True, rate_limit_per_ip="1/minute")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, root_path="/crm")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for _ in range(3):
            assert (await client.get("/crm/healthz")).status_code == 200
        assert (await client.get("/crm" + ME)).status_code == 401
        limited(await client.get("/crm" + ME))


async def test_the_default_is_off_on_sqlite_and_on_elsewhere(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SALESDESK_RATE_LIMIT_ENABLED", raising=False)
    assert not make_settings(database_url=EMBEDDED_DATABASE_URL).rate_limits_on
    assert not make_settings(database_url="sqlite+aiosqlite:////srv/crm.db").rate_limits_on
    assert make_settings(database_url=POSTGRES_URL).rate_limits_on
    assert make_settings(database_url="postgres://u@h/db").rate_limits_on
    assert make_settings(database_url=EMBEDDED_DATABASE_URL, rate_limit_enabled=True).rate_limits_on
    assert not make_settings(database_url=POSTGRES_URL, rate_limit_enabled=False).rate_limits_on
    monkeypatch.setenv("SALESDESK_RATE_LIMIT_ENABLED", "true")
    assert make_settings(database_url=EMBEDDED_DATABASE_URL).rate_limits_on

    # The apps follow their own settings (the test suite's cached ones have limits off).
    monkeypatch.delenv("SALESDESK_RATE_LIMIT_ENABLED")
    clock = FakeClock()
    embedded = make_app(
        database, clock, database_url=EMBEDDED_DATABASE_URL, rate_limit_per_ip="1/minute"
    )
    served = make_app(database, clock, database_url=POSTGRES_URL, rate_limit_per_ip="1/minute")
    async with client_for(embedded) as client:
        for _ in range(5):
            assert (await me(client)).status_code == 401
    async with client_for(served) as client:
        assert (await me(client)).status_code == 401
        assert limited(await me(client)) == 60


def test_rates_are_parsed_and_bad_ones_refused() -> None:
    assert Rate.parse("600/minute") == Rate(600, 60.0)
    assert Rate.parse(" 5 / seconds ") == Rate(5, 1.0)
    assert Rate.parse("10000/day") == Rate(10000, 86400.0)
    for bad in ("0/minute", "lots", "5/fortnight", "-1/second", "5"):
        with pytest.raises(ValidationError):
            make_settings(rate_limit_per_user=bad)
        with pytest.raises(ValueError):
            Rate.parse(bad)


# RateLimit-Policy and RateLimit headers -----------------------------------------------------


async def test_every_limited_answer_says_the_policies_and_what_is_left(
    database: Database,
) -> None:
    clock = FakeClock()
    app = make_app(
        database,
        clock,
        rate_limit_enabled=True,
        rate_limit_per_user="3/minute",
        rate_limit_per_ip="100/second",
    )
    rep = await make_user(database, Role.REP)
    both = '"ip";q=100;w=1, "user";q=3;w=60'
    async with client_for(app) as client:
        first = await me(client, rep)
        assert first.status_code == 200
        assert first.headers["ratelimit-policy"] == both
        # One of three spent; the next is earned back in 20 s (60 s / 3).
        assert first.headers["ratelimit"] == '"ip";r=99;t=1, "user";r=2;t=20'

        clock.advance(5)
        second = await me(client, rep)
        assert second.headers["ratelimit"] == '"ip";r=99;t=1, "user";r=1;t=15'
        third = await me(client, rep)
        assert third.headers["ratelimit"] == '"ip";r=98;t=1, "user";r=0;t=15'

        refused = await me(client, rep)
        assert limited(refused) == 15
        assert refused.headers["ratelimit-policy"] == both
        # A refused request is not counted: the IP's allowance stands where it was.
        assert refused.headers["ratelimit"] == '"ip";r=98;t=1, "user";r=0;t=15'

        # Without a token only the IP's policy applies; errors carry the headers too.
        anonymous = await me(client)
        problem(anonymous, 401, "unauthorized")
        assert anonymous.headers["ratelimit-policy"] == '"ip";q=100;w=1'
        assert anonymous.headers["ratelimit"] == '"ip";r=97;t=1'

        clock.advance(60)
        rested = await me(client, rep)
        assert rested.headers["ratelimit"] == '"ip";r=99;t=1, "user";r=2;t=20'


async def test_answers_that_are_not_limited_carry_no_rate_limit_headers(
    database: Database, client: httpx.AsyncClient
) -> None:
    rep = await make_user(database, Role.REP)
    # The shared app runs with limits off.
    off = await me(client, rep)
    assert off.status_code == 200
    assert "ratelimit" not in off.headers and "ratelimit-policy" not in off.headers

    app = make_app(database, FakeClock(), rate_limit_enabled=True)
    async with client_for(app) as limited_client:
        health = await limited_client.get("/healthz")
        assert health.status_code == 200
        assert "ratelimit" not in health.headers and "ratelimit-policy" not in health.headers


# Login throttle ----------------------------------------------------------------------------


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(TOKEN, data={"username": email, "password": password})


async def refresh_tokens(database: Database) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(RefreshToken)) or 0)


async def test_failed_logins_lock_the_email_even_for_the_right_password(
    database: Database,
) -> None:
    clock = FakeClock()
    # Request limits off: the throttle works whatever they are.
    app = make_app(database, clock, rate_limit_enabled=False)
    await make_user(database, Role.REP, password=PASSWORD, email="target@example.com")
    await make_user(database, Role.REP, password=PASSWORD, email="bystander@example.com")
    async with client_for(app) as client:
        for _ in range(5):
            clock.advance(10)
            problem(await login(client, "target@example.com", "guess"), 401, "unauthorized")
        response = await login(client, "Target@Example.com ", PASSWORD)
        assert limited(response) == 300 - 40  # until the first failure is 300 s old
        assert await refresh_tokens(database) == 0

        # Other accounts log in as usual, from the same address.
        assert (await login(client, "bystander@example.com", PASSWORD)).status_code == 200

        clock.advance(259)
        assert limited(await login(client, "target@example.com", PASSWORD)) == 1
        clock.advance(1)
        assert (await login(client, "target@example.com", PASSWORD)).status_code == 200


async def test_a_successful_login_clears_the_emails_failures(database: Database) -> None:
    app = make_app(database, FakeClock())
    await make_user(database, Role.REP, password=PASSWORD, email="typo@example.com")
    async with client_for(app) as client:
        for _ in range(4):
            problem(await login(client, "typo@example.com", "typo"), 401, "unauthorized")
        assert (await login(client, "typo@example.com", PASSWORD)).status_code == 200
        for _ in range(4):
            problem(await login(client, "typo@example.com", "typo"), 401, "unauthorized")
        assert (await login(client, "typo@example.com", PASSWORD)).status_code == 200


async def test_unknown_emails_are_throttled_exactly_like_known_ones(database: Database) -> None:
    app = make_app(database, FakeClock())
    await make_user(database, Role.REP, password=PASSWORD, email="known@example.com")
    answers: dict[str, list[tuple[int, str | None]]] = {}
    async with client_for(app) as client:
        for email in ("known@example.com", "nobody@example.com"):
            answers[email] = []
            for _ in range(6):
                response = await login(client, email, "guess")
                answers[email].append((response.status_code, response.headers.get("retry-after")))
    assert answers["known@example.com"] == answers["nobody@example.com"]
    assert answers["nobody@example.com"] == [(401, None)] * 5 + [(429, "300")]


async def test_failed_logins_lock_the_client_ip_across_emails(database: Database) -> None:
    clock = FakeClock()
    app = make_app(database, clock, login_max_failures_per_ip=3)
    await make_user(database, Role.REP, password=PASSWORD, email="mine@example.com")
    async with client_for(app, "1.2.3.4") as attacker, client_for(app, "5.6.7.8") as office:
        for n in range(3):
            problem(await login(attacker, f"victim{n}@example.com", "guess"), 401, "unauthorized")
        assert limited(await login(attacker, "victim9@example.com", "guess")) == 300
        # Even an account of the attacker's own neither passes nor clears the address.
        assert limited(await login(attacker, "mine@example.com", PASSWORD)) == 300
        assert (await login(office, "mine@example.com", PASSWORD)).status_code == 200
        assert limited(await login(attacker, "victim9@example.com", "guess")) == 300


async def test_concurrent_guesses_cannot_outrun_the_throttle(database: Database) -> None:
    app = make_app(database, FakeClock())
    await make_user(database, Role.REP, password=PASSWORD, email="burst@example.com")
    async with client_for(app) as client:
        responses = await asyncio.gather(
            *(login(client, "burst@example.com", f"guess-{n}") for n in range(12))
        )
    assert sorted(r.status_code for r in responses) == [401] * 5 + [429] * 7
