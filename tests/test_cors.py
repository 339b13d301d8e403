"""CORS for web apps on other origins (SALESDESK_CORS_ORIGINS): preflights, the headers on
answers and errors, the port wildcard, and no CORS at all when no origin is set.

A real browser's view of the same is in tests/test_browser.py.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from app.config import EMBEDDED_DATABASE_URL, LOCAL_DEVELOPMENT_ORIGINS
from app.db import Database
from app.main import create_app
from app.models.people import Role
from tests.factories import client_for, make_customer, make_settings, make_user, problem

APP_ORIGIN = "https://crm.example.com"
CUSTOMERS = "/api/v1/customers"


def cors_app(database: Database, origins: str, **overrides: object) -> FastAPI:
    return create_app(make_settings(cors_origins=origins, **overrides), database)


def preflight(origin: str, method: str = "POST", headers: str = "") -> dict[str, str]:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return asked


def exposed(response: httpx.Response) -> set[str]:
    return {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}


async def test_a_preflight_answers_204_for_the_apis_methods_and_headers(
    database: Database,
) -> None:
    app = cors_app(database, APP_ORIGIN)
    asked = "authorization, content-type, if-match, if-none-match, idempotency-key, x-request-id"
    async with client_for(app) as client:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            answer = await client.options(CUSTOMERS, headers=preflight(APP_ORIGIN, method, asked))
            assert answer.status_code == 204, answer.text
            assert answer.content == b""
            assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
            assert method in answer.headers["access-control-allow-methods"]
            allowed = answer.headers["access-control-allow-headers"].lower()
            for header in asked.split(", "):
                assert header in allowed
            assert "access-control-allow-credentials" not in answer.headers
            assert int(answer.headers["access-control-max-age"]) > 0


async def test_a_preflight_needs_no_token_and_is_never_rate_limited(database: Database) -> None:
    app = cors_app(database, APP_ORIGIN, rate_limit_enabled=True, rate_limit_per_ip="1/minute")
    async with client_for(app) as client:
        for _ in range(5):
            answer = await client.options(
                "/api/v1/customers/0b4c9d5e-0000-4000-8000-000000000000",
                headers=preflight(APP_ORIGIN, "PATCH", "authorization, if-match"),
            )
            assert answer.status_code == 204
        # The preflights spent none of the address's one request a minute.
        problem(await client.get(CUSTOMERS, headers={"Origin": APP_ORIGIN}), 401, "unauthorized")
        problem(await client.get(CUSTOMERS, headers={"Origin": APP_ORIGIN}), 429, "rate_limited")


async def test_answers_and_errors_carry_the_headers_a_page_needs(database: Database) -> None:
    app = cors_app(database, APP_ORIGIN, rate_limit_enabled=True, rate_limit_per_ip="3/minute")
    rep = await make_user(database, Role.REP)
    await make_customer(database, rep, "Wuxi Taihu Textiles")
    origin = {"Origin": APP_ORIGIN}
    wanted = {
        "etag",
        "location",
        "retry-after",
        "idempotent-replayed",
        "x-request-id",
        "ratelimit-policy",
        "ratelimit",
    }
    async with client_for(app) as client:
        listed = await client.get(CUSTOMERS, headers={**origin, **rep.headers})
        assert listed.status_code == 200
        assert listed.json()["items"][0]["name"] == "Wuxi Taihu Textiles"
        created = await client.post(
            CUSTOMERS, json={"name": "Suzhou Pumps"}, headers={**origin, **rep.headers}
        )
        assert created.status_code == 201
        unauthorized = await client.get(CUSTOMERS, headers=origin)
        problem(unauthorized, 401, "unauthorized")
        throttled = await client.get(CUSTOMERS, headers={**origin, **rep.headers})
        problem(throttled, 429, "rate_limited")
        for answer in (listed, created, unauthorized, throttled):
            assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
            assert "Origin" in answer.headers["vary"]
            assert exposed(answer) == wanted


async def test_another_origin_gets_no_cors_headers_and_its_preflight_is_refused(
    database: Database,
) -> None:
    app = cors_app(database, APP_ORIGIN)
    rep = await make_user(database, Role.REP)
    async with client_for(app) as client:
        refused = await client.options(CUSTOMERS, headers=preflight("https://evil.example"))
        body = problem(refused, 400, "bad_request")
        assert "origin" in body["detail"]
        assert "access-control-allow-origin" not in refused.headers
        # A header the API does not read is refused for an allowed origin too.
        odd = await client.options(CUSTOMERS, headers=preflight(APP_ORIGIN, "GET", "x-odd"))
        assert "headers" in problem(odd, 400, "bad_request")["detail"]

        # The request itself is answered (CORS is the browser's to enforce), without the
        # header that would let the page read it.
        answer = await client.get(
            CUSTOMERS, headers={"Origin": "https://evil.example", **rep.headers}
        )
        assert answer.status_code == 200
        assert "access-control-allow-origin" not in answer.headers


async def test_a_port_wildcard_allows_that_host_on_any_port_only(database: Database) -> None:
    app = cors_app(database, "http://localhost:*, https://crm.example.com")
    async with client_for(app) as client:
        for origin in ("http://localhost:5173", "http://localhost:3000", "http://localhost"):
            answer = await client.options(CUSTOMERS, headers=preflight(origin))
            assert answer.status_code == 204, origin
            assert answer.headers["access-control-allow-origin"] == origin
        for origin in (
            "https://localhost:5173",  # another scheme
            "http://localhost.evil.example:5173",
            "http://127.0.0.1:5173",
            "https://crm.example.com:8443",  # an exact origin means its own port only
        ):
            answer = await client.options(CUSTOMERS, headers=preflight(origin))
            assert answer.status_code == 400, origin


async def test_a_star_allows_every_origin(database: Database) -> None:
    app = cors_app(database, "*")
    async with client_for(app) as client:
        answer = await client.options(CUSTOMERS, headers=preflight("https://anyone.example"))
        assert answer.status_code == 204
        answer = await client.get("/healthz", headers={"Origin": "https://anyone.example"})
        assert answer.headers["access-control-allow-origin"] == "*"


async def test_without_origins_there_is_no_cors_at_all(client: httpx.AsyncClient) -> None:
    # The shared app has SALESDESK_CORS_ORIGINS unset on a database that is not the embedded
    # default: nothing changes for server-to-server callers.
    answer = await client.options(CUSTOMERS, headers=preflight(APP_ORIGIN))
    problem(answer, 405, "method_not_allowed")
    answer = await client.get("/healthz", headers={"Origin": APP_ORIGIN})
    assert "access-control-allow-origin" not in answer.headers
    assert "vary" not in answer.headers


def test_the_embedded_default_allows_local_development_servers() -> None:
    embedded = make_settings(database_url=EMBEDDED_DATABASE_URL)
    assert embedded.cors_allowed == tuple(LOCAL_DEVELOPMENT_ORIGINS.split(","))
    assert make_settings(database_url=EMBEDDED_DATABASE_URL, cors_origins="").cors_allowed == ()
    postgres = "postgresql+asyncpg://salesdesk@db.example:5432/salesdesk"
    assert make_settings(database_url=postgres).cors_allowed == ()
    assert make_settings(
        database_url=postgres, cors_origins=" https://A.example.com ,http://[::1]:*,"
    ).cors_allowed == ("https://a.example.com", "http://[::1]:*")


@pytest.mark.parametrize(
    "origins",
    [
        "https://crm.example.com/",  # a path: a browser never sends one
        "crm.example.com",
        "ftp://crm.example.com",
        "http://localhost:*:*",
        "https://*.example.com",
    ],
)
def test_a_setting_that_is_not_a_list_of_origins_is_refused(origins: str) -> None:
    with pytest.raises(ValidationError, match="SALESDESK_CORS_ORIGINS"):
        make_settings(cors_origins=origins)
