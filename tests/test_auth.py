"""Authentication: login, access tokens, refresh-token rotation and reuse detection, logout."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from jose import jwt
from sqlalchemy import select, text, update

from app.config import get_settings
from app.db import Database
from app.models.people import RefreshToken, Role
from tests.factories import Person, make_org, make_region, make_user, problem

PASSWORD = "correct-horse-battery"
TOKEN_URL = "/api/v1/auth/token"
REFRESH_URL = "/api/v1/auth/refresh"
LOGOUT_URL = "/api/v1/auth/logout"
ME_URL = "/api/v1/auth/me"


def unauthorized(response: httpx.Response) -> dict:
    body = problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(TOKEN_URL, data={"username": email, "password": password})


async def tokens(client: httpx.AsyncClient, email: str) -> dict:
    response = await login(client, email)
    assert response.status_code == 200, response.text
    return response.json()


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(REFRESH_URL, json={"refresh_token": refresh_token})


async def make_login_user(database: Database, email: str = "rep@example.com") -> Person:
    region = await make_region(database)
    return await make_user(database, Role.REP, region, password=PASSWORD, email=email)


# Login --------------------------------------------------------------------------------------


async def test_login_returns_a_token_pair(client: httpx.AsyncClient, database: Database) -> None:
    person = await make_login_user(database)
    # Emails are matched case-insensitively and trimmed, as people type them.
    response = await login(client, "  Rep@Example.COM ")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == get_settings().access_token_minutes * 60
    assert body["access_token"] and body["refresh_token"]
    assert body["access_token"] != body["refresh_token"]
    # Token responses must never be cached (RFC 6749 §5.1).
    assert response.headers["cache-control"] == "no-store"

    me = await client.get(ME_URL, headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == str(person.id)


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("rep@example.com", "wrong-password"),
        ("nobody@example.com", PASSWORD),
        ("inactive@example.com", PASSWORD),
        ("nopassword@example.com", "anything-at-all"),
    ],
    ids=["wrong-password", "unknown-email", "inactive-user", "no-password-set"],
)
async def test_bad_login_is_401(
    client: httpx.AsyncClient, database: Database, email: str, password: str
) -> None:
    region = await make_region(database)
    await make_user(database, Role.REP, region, password=PASSWORD, email="rep@example.com")
    await make_user(
        database, Role.REP, region, password=PASSWORD, email="inactive@example.com", is_active=False
    )
    await make_user(database, Role.REP, region, email="nopassword@example.com")
    body = unauthorized(await login(client, email, password))
    assert "access_token" not in body
    async with database.session() as session:
        assert (await session.scalars(select(RefreshToken))).all() == []


async def test_login_needs_the_form_encoding(client: httpx.AsyncClient, database: Database) -> None:
    await make_login_user(database)
    response = await client.post(
        TOKEN_URL, json={"username": "rep@example.com", "password": PASSWORD}
    )
    problem(response, 422, "validation_error")


# Access tokens ------------------------------------------------------------------------------

KEY = get_settings().signing_key


def _claims(user_id: uuid.UUID, **override: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": str(user_id),
        "role": "rep",
        "region_id": None,
        "type": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=10)).timestamp()),
    }
    claims.update(override)
    return {k: v for k, v in claims.items() if v is not ...}


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _tampered(person: Person) -> str:
    header, _, signature = person.token.split(".")
    return ".".join([header, _b64(_claims(person.id, role="director")), signature])


def _unsigned(person: Person) -> str:
    return ".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(_claims(person.id)), ""])


def _signed(algorithm: str, key: str | None = None, **override: object) -> Callable[[Person], str]:
    def build(person: Person) -> str:
        return jwt.encode(_claims(person.id, **override), key or KEY(), algorithm=algorithm)

    return build


BAD_TOKENS: dict[str, Callable[[Person], str]] = {
    "malformed": lambda _: "not-a-jwt",
    "garbage-segments": lambda _: "aaa.bbb.ccc",
    "other-key": _signed("HS256", key="some-other-secret-key-of-sufficient-length"),
    "tampered-payload": _tampered,
    "expired": _signed("HS256", exp=int((datetime.now(UTC) - timedelta(seconds=5)).timestamp())),
    "no-exp": _signed("HS256", exp=...),
    "alg-none": _unsigned,
    "alg-hs512": _signed("HS512"),
    "alg-hs384": _signed("HS384"),
    "not-an-access-token": _signed("HS256", type="refresh"),
    "unknown-user": lambda _: jwt.encode(_claims(uuid.uuid4()), KEY(), algorithm="HS256"),
    "bad-subject": _signed("HS256", sub="not-a-uuid"),
}


async def test_a_well_formed_token_is_accepted(
    client: httpx.AsyncClient, database: Database
) -> None:
    # The control for the rejections below: the same recipe, done right, is let in.
    person = await make_login_user(database)
    response = await client.get(ME_URL, headers=bearer(_signed("HS256")(person)))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("make_token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_bad_access_token_is_401(
    client: httpx.AsyncClient, database: Database, make_token: Callable[[Person], str]
) -> None:
    person = await make_login_user(database)
    token = make_token(person)
    unauthorized(await client.get(ME_URL, headers=bearer(token)))
    unauthorized(await client.get("/api/v1/regions", headers=bearer(token)))


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic cmVwOnBhc3N3b3Jk"}],
    ids=["missing", "empty-bearer", "basic-scheme"],
)
async def test_missing_credentials_are_401(
    client: httpx.AsyncClient, database: Database, headers: dict[str, str]
) -> None:
    await make_login_user(database)
    unauthorized(await client.get(ME_URL, headers=headers))
    unauthorized(await client.get("/api/v1/users", headers=headers))


async def test_refresh_token_is_no_bearer_token(
    client: httpx.AsyncClient, database: Database
) -> None:
    await make_login_user(database)
    pair = await tokens(client, "rep@example.com")
    unauthorized(await client.get(ME_URL, headers=bearer(pair["refresh_token"])))


async def test_deactivation_takes_effect_at_once(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = await make_user(database, Role.REP, org.east, password=PASSWORD, email="x@example.com")
    pair = await tokens(client, "x@example.com")
    assert (await client.get(ME_URL, headers=bearer(pair["access_token"]))).status_code == 200

    response = await client.patch(
        f"/api/v1/users/{rep.id}", json={"is_active": False}, headers=org.east_manager.headers
    )
    assert response.status_code == 200, response.text

    # The unexpired access token, the refresh token and the password all stop working.
    unauthorized(await client.get(ME_URL, headers=bearer(pair["access_token"])))
    unauthorized(await client.get(ME_URL, headers=rep.headers))
    unauthorized(await refresh(client, pair["refresh_token"]))
    unauthorized(await login(client, "x@example.com"))


# Refresh ------------------------------------------------------------------------------------


async def test_refresh_rotates_the_pair(client: httpx.AsyncClient, database: Database) -> None:
    person = await make_login_user(database)
    first = await tokens(client, "rep@example.com")

    response = await refresh(client, first["refresh_token"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["token_type"] == "bearer" and second["expires_in"] > 0
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    me = await client.get(ME_URL, headers=bearer(second["access_token"]))
    assert me.json()["id"] == str(person.id)

    # The new refresh token works once more; the old one never again.
    third = await refresh(client, second["refresh_token"])
    assert third.status_code == 200, third.text
    unauthorized(await refresh(client, first["refresh_token"]))


async def test_replayed_refresh_token_revokes_its_family(
    client: httpx.AsyncClient, database: Database
) -> None:
    await make_login_user(database)
    stolen = await tokens(client, "rep@example.com")
    other_login = await tokens(client, "rep@example.com")

    rotated = await refresh(client, stolen["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    unauthorized(await refresh(client, stolen["refresh_token"]))

    # The newer token of the same login is dead too; another login of the user is not.
    unauthorized(await refresh(client, rotated.json()["refresh_token"]))
    assert (await refresh(client, other_login["refresh_token"])).status_code == 200
    async with database.session() as session:
        rows = (await session.scalars(select(RefreshToken))).all()
    revoked = {row.family_id for row in rows if row.revoked_at is not None}
    assert len(revoked) == 1 and len({row.family_id for row in rows}) == 2


async def test_unknown_or_expired_refresh_token_is_401(
    client: httpx.AsyncClient, database: Database
) -> None:
    await make_login_user(database)
    pair = await tokens(client, "rep@example.com")
    unauthorized(await refresh(client, "rt_" + "x" * 43))
    async with database.session() as session, session.begin():
        await session.execute(
            update(RefreshToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    unauthorized(await refresh(client, pair["refresh_token"]))
    problem(await client.post(REFRESH_URL, json={}), 422, "validation_error")
    problem(await client.post(REFRESH_URL, json={"refresh_token": ""}), 422, "validation_error")


async def test_refresh_tokens_are_stored_hashed(
    client: httpx.AsyncClient, database: Database
) -> None:
    await make_login_user(database)
    first = await tokens(client, "rep@example.com")
    second = (await refresh(client, first["refresh_token"])).json()
    async with database.session() as session:
        rows = (await session.execute(text("SELECT * FROM refresh_tokens"))).all()
    assert len(rows) == 2
    dump = " ".join(str(value) for row in rows for value in row)
    for raw in (first["refresh_token"], second["refresh_token"]):
        assert raw not in dump
        assert raw.removeprefix("rt_") not in dump


async def test_concurrent_refreshes_of_one_token_one_wins(
    client: httpx.AsyncClient, database: Database
) -> None:
    await make_login_user(database)
    pair = await tokens(client, "rep@example.com")
    responses = await asyncio.gather(
        refresh(client, pair["refresh_token"]), refresh(client, pair["refresh_token"])
    )
    assert sorted(r.status_code for r in responses) == [200, 401], [r.text for r in responses]
    loser = next(r for r in responses if r.status_code == 401)
    unauthorized(loser)
    # Two uses of one token is a reuse, whichever order they ran in: the login is revoked.
    winner = next(r for r in responses if r.status_code == 200).json()
    unauthorized(await refresh(client, winner["refresh_token"]))


# Logout and me ------------------------------------------------------------------------------


async def test_logout_with_a_token_revokes_that_login_only(
    client: httpx.AsyncClient, database: Database
) -> None:
    await make_login_user(database)
    phone = await tokens(client, "rep@example.com")
    laptop = await tokens(client, "rep@example.com")
    phone_rotated = (await refresh(client, phone["refresh_token"])).json()

    response = await client.post(
        LOGOUT_URL,
        json={"refresh_token": phone_rotated["refresh_token"]},
        headers=bearer(phone_rotated["access_token"]),
    )
    assert response.status_code == 204 and response.content == b""
    unauthorized(await refresh(client, phone_rotated["refresh_token"]))
    assert (await refresh(client, laptop["refresh_token"])).status_code == 200


async def test_logout_without_a_body_revokes_every_login(
    client: httpx.AsyncClient, database: Database
) -> None:
    await make_login_user(database)
    other = await make_user(database, Role.DIRECTOR, password=PASSWORD, email="boss@example.com")
    first = await tokens(client, "rep@example.com")
    second = await tokens(client, "rep@example.com")
    boss = await tokens(client, other.user.email)

    response = await client.post(LOGOUT_URL, headers=bearer(first["access_token"]))
    assert response.status_code == 204
    unauthorized(await refresh(client, first["refresh_token"]))
    unauthorized(await refresh(client, second["refresh_token"]))
    assert (await refresh(client, boss["refresh_token"])).status_code == 200


async def test_logout_cannot_revoke_someone_elses_login(
    client: httpx.AsyncClient, database: Database
) -> None:
    await make_login_user(database)
    await make_user(database, Role.DIRECTOR, password=PASSWORD, email="boss@example.com")
    mine = await tokens(client, "rep@example.com")
    theirs = await tokens(client, "boss@example.com")
    response = await client.post(
        LOGOUT_URL,
        json={"refresh_token": theirs["refresh_token"]},
        headers=bearer(mine["access_token"]),
    )
    assert response.status_code == 204
    assert (await refresh(client, theirs["refresh_token"])).status_code == 200
    assert (await refresh(client, mine["refresh_token"])).status_code == 200


async def test_logout_needs_authentication(client: httpx.AsyncClient, database: Database) -> None:
    await make_login_user(database)
    pair = await tokens(client, "rep@example.com")
    unauthorized(await client.post(LOGOUT_URL, json={"refresh_token": pair["refresh_token"]}))
    assert (await refresh(client, pair["refresh_token"])).status_code == 200


async def test_me_returns_the_user_without_secrets(
    client: httpx.AsyncClient, database: Database
) -> None:
    person = await make_login_user(database)
    pair = await tokens(client, "rep@example.com")
    response = await client.get(ME_URL, headers=bearer(pair["access_token"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(person.id)
    assert body["email"] == "rep@example.com"
    assert body["role"] == "rep"
    assert body["region_id"] == str(person.user.region_id)
    assert body["is_active"] is True
    assert body["full_name"] == person.user.full_name
    assert not {"password", "password_hash"} & body.keys()
    assert "argon2" not in response.text
