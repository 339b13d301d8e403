"""The current user: what /auth/me answers, changing oneself, changing one's password."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from app.db import Database
from app.main import create_app
from app.models.people import RefreshToken, Role, User
from app.models.platform import AuditEntry
from app.permissions import ROLE_PERMISSIONS, Permission
from app.ratelimit import RateLimits
from tests.factories import Person, client_for, make_org, make_region, make_settings, make_user
from tests.factories import problem as assert_problem

API = "/api/v1"
ME = f"{API}/auth/me"
PASSWORD_URL = f"{API}/auth/me/password"
TOKEN_URL = f"{API}/auth/token"
REFRESH_URL = f"{API}/auth/refresh"
PASSWORD = "correct-horse-battery"
NEW_PASSWORD = "Lianhua pumps at dawn 2027"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(TOKEN_URL, data={"username": email, "password": password})


async def tokens(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict:
    response = await login(client, email, password)
    assert response.status_code == 200, response.text
    return response.json()


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(REFRESH_URL, json={"refresh_token": refresh_token})


async def stored_user(database: Database, person: Person) -> User:
    async with database.session() as session:
        return await session.get_one(User, person.id)


# GET /auth/me ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
async def test_me_carries_the_roles_permissions_and_the_departments_context(
    client: httpx.AsyncClient, database: Database, role: Role
) -> None:
    region = None if role is Role.DIRECTOR else await make_region(database)
    person = await make_user(database, role, region)
    response = await client.get(ME, headers=person.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    # The version leads; the rest follows the department's settings (tests/test_etags.py).
    assert response.headers["etag"].startswith(f'"{body["version"]}-')
    # Every field of a user as /users answers it, and the caller's own.
    assert body["id"] == str(person.id)
    assert body["email"] == person.user.email
    assert body["full_name"] == person.user.full_name
    assert body["role"] == role.value
    assert body["region_id"] == (str(region.id) if region else None)
    assert body["is_active"] is True
    assert body["phone"] is None and body["locale"] is None
    assert body["permissions"] == sorted(p.value for p in ROLE_PERMISSIONS[role])
    # The handbook's defaults.
    assert body["time_zone"] == "Asia/Shanghai"
    assert body["business_hours"] == {
        "time_zone": "Asia/Shanghai",
        "start": "09:00",
        "end": "18:00",
        "working_days": [0, 1, 2, 3, 4],
    }
    assert body["currency"] == "CNY"


async def test_permissions_differ_by_role(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    granted = {}
    for person in (org.director, org.east_manager, org.east_rep1):
        granted[person.user.role] = set(
            (await client.get(ME, headers=person.headers)).json()["permissions"]
        )
    assert Permission.SETTINGS_MANAGE in granted[Role.DIRECTOR]
    assert Permission.SETTINGS_MANAGE not in granted[Role.REGIONAL_MANAGER]
    assert Permission.CUSTOMERS_ASSIGN in granted[Role.REGIONAL_MANAGER]
    assert Permission.CUSTOMERS_ASSIGN not in granted[Role.REP]
    assert granted[Role.REP] < granted[Role.REGIONAL_MANAGER] < granted[Role.DIRECTOR]


async def test_me_follows_the_departments_settings(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    hours = {"time_zone": "Asia/Urumqi", "start": "10:00", "end": "19:00", "working_days": [0, 5]}
    changed = await client.patch(
        f"{API}/settings", json={"business_hours": hours}, headers=org.director.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["currency"] == "CNY"
    body = (await client.get(ME, headers=org.east_rep1.headers)).json()
    assert body["time_zone"] == "Asia/Urumqi"
    assert body["business_hours"] == hours


async def test_the_currency_is_the_deployments(database: Database) -> None:
    app = create_app(make_settings(currency="EUR"), database)
    org = await make_org(database)
    async with client_for(app) as client:
        me = await client.get(ME, headers=org.east_rep1.headers)
        settings = await client.get(f"{API}/settings", headers=org.director.headers)
        # It is a deployment setting, not a department one.
        refused = await client.patch(
            f"{API}/settings", json={"currency": "USD"}, headers=org.director.headers
        )
    assert me.json()["currency"] == "EUR"
    assert settings.json()["currency"] == "EUR"
    assert_problem(refused, 422, "validation_error")


# PATCH /auth/me --------------------------------------------------------------------------


async def test_a_user_changes_their_name_phone_and_language(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    rep = org.east_rep1
    response = await client.patch(
        ME,
        json={"full_name": "Qian Wei", "phone": "+86 139 0000 0001", "locale": "zh-CN"},
        headers={**rep.headers, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["full_name"], body["phone"], body["locale"]) == (
        "Qian Wei",
        "+86 139 0000 0001",
        "zh-CN",
    )
    assert body["version"] == 2 and response.headers["etag"].startswith('"2-')
    assert body["permissions"] == sorted(p.value for p in ROLE_PERMISSIONS[Role.REP])
    assert (await client.get(ME, headers=rep.headers)).json() == body
    user = await stored_user(database, rep)
    assert (user.full_name, user.phone, user.locale) == ("Qian Wei", "+86 139 0000 0001", "zh-CN")
    # Colleagues see the new name and phone; the audit log says who changed it.
    seen = await client.get(f"{API}/users/{rep.id}", headers=org.east_manager.headers)
    assert (seen.json()["full_name"], seen.json()["phone"]) == ("Qian Wei", "+86 139 0000 0001")
    async with database.session() as session:
        entry = (
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.entity_id == rep.id, AuditEntry.action == "update"
                )
            )
        ).one()
    assert entry.actor_id == rep.id
    assert entry.after == {"full_name": "Qian Wei", "phone": "+86 139 0000 0001", "locale": "zh-CN"}

    # null removes the phone and the language choice.
    cleared = await client.patch(ME, json={"phone": None, "locale": None}, headers=rep.headers)
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["phone"], cleared.json()["locale"]) == (None, None)
    assert cleared.json()["full_name"] == "Qian Wei"
    # "en" is the other language.
    english = await client.patch(ME, json={"locale": "en"}, headers=rep.headers)
    assert english.json()["locale"] == "en"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"locale": "fr"}, "locale"),
        ({"locale": "zh_CN"}, "locale"),
        ({"full_name": ""}, "full_name"),
        ({"full_name": None}, "full_name"),
        ({"phone": "1" * 51}, "phone"),
        ({"role": "director"}, "role"),
        ({"region_id": None}, "region_id"),
        ({"email": "someone.else@example.com"}, "email"),
        ({"is_active": False}, "is_active"),
        ({"password": "Lianhua pumps at dawn 2027"}, "password"),
        ({"permissions": ["settings:manage"]}, "permissions"),
        ({"id": "00000000-0000-0000-0000-000000000001"}, "id"),
        ({"version": 7}, "version"),
        ({"currency": "USD"}, "currency"),
    ],
)
async def test_patch_me_refuses_bad_and_read_only_fields(
    client: httpx.AsyncClient, database: Database, body: dict, field: str
) -> None:
    rep = await make_user(database, Role.REP, await make_region(database))
    response = await client.patch(
        ME, json={"phone": "+86 21 5555 0100", **body}, headers=rep.headers
    )
    problem = assert_problem(response, 422, "validation_error")
    assert [error["loc"] for error in problem["errors"]] == [["body", field]]
    user = await stored_user(database, rep)
    assert (user.version, user.phone, user.full_name) == (1, None, rep.user.full_name)


async def test_patch_me_honours_if_match(client: httpx.AsyncClient, database: Database) -> None:
    rep = await make_user(database, Role.REP, await make_region(database))
    stale = await client.patch(
        ME, json={"phone": "+86 21 5555 0100"}, headers={**rep.headers, "If-Match": '"7"'}
    )
    assert_problem(stale, 412, "version_conflict")
    assert (await stored_user(database, rep)).phone is None


async def test_patch_me_needs_a_caller(client: httpx.AsyncClient) -> None:
    assert_problem(await client.patch(ME, json={"phone": "1"}), 401, "unauthorized")


# POST /auth/me/password ------------------------------------------------------------------


async def make_login_user(database: Database) -> Person:
    region = await make_region(database)
    return await make_user(
        database, Role.REP, region, password=PASSWORD, email="qian.wei@example.com"
    )


async def change(
    client: httpx.AsyncClient, access_token: str, current: str, new: str
) -> httpx.Response:
    return await client.post(
        PASSWORD_URL,
        json={"current_password": current, "new_password": new},
        headers=bearer(access_token),
    )


async def test_a_password_change_ends_the_other_logins_only(
    client: httpx.AsyncClient, database: Database
) -> None:
    person = await make_login_user(database)
    phone = await tokens(client, person.user.email)
    laptop = await tokens(client, person.user.email)
    # The laptop's login has been refreshed once: its current refresh token is the second.
    laptop = (await refresh(client, laptop["refresh_token"])).json()
    tablet = await tokens(client, person.user.email)

    response = await change(client, phone["access_token"], PASSWORD, NEW_PASSWORD)
    assert response.status_code == 204, response.text
    assert response.content == b""

    # The login the change came with goes on; the others' refresh tokens are refused.
    assert (await refresh(client, phone["refresh_token"])).status_code == 200
    for other in (laptop, tablet):
        assert_problem(await refresh(client, other["refresh_token"]), 401, "unauthorized")
    # The old password no longer logs in; the new one does.
    assert_problem(await login(client, person.user.email), 401, "unauthorized")
    assert (await login(client, person.user.email, NEW_PASSWORD)).status_code == 200

    user = await stored_user(database, person)
    assert user.version == 2
    async with database.session() as session:
        entry = (
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.entity_id == person.id, AuditEntry.action == "update"
                )
            )
        ).one()
    # The log says that the credentials changed, and never how.
    assert entry.actor_id == person.id
    assert (entry.before, entry.after) == (
        {"credentials": "[changed]"},
        {"credentials": "[changed]"},
    )
    assert "argon2" not in str(entry.after)


async def test_a_token_of_no_known_login_ends_every_login(
    client: httpx.AsyncClient, database: Database
) -> None:
    # The factory's token names no login (as tokens issued before logins were named).
    person = await make_login_user(database)
    pair = await tokens(client, person.user.email)
    response = await change(client, person.token, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 204, response.text
    assert_problem(await refresh(client, pair["refresh_token"]), 401, "unauthorized")


async def test_a_wrong_current_password_changes_nothing(
    client: httpx.AsyncClient, database: Database
) -> None:
    person = await make_login_user(database)
    pair = await tokens(client, person.user.email)
    other = await tokens(client, person.user.email)
    response = await change(client, pair["access_token"], "not-my-password", NEW_PASSWORD)
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"] == [
        {
            "loc": ["body", "current_password"],
            "msg": "The current password is wrong.",
            "type": "wrong_password",
        }
    ]
    assert (await stored_user(database, person)).version == 1
    assert (await refresh(client, other["refresh_token"])).status_code == 200
    assert (await login(client, person.user.email)).status_code == 200
    assert_problem(await login(client, person.user.email, NEW_PASSWORD), 401, "unauthorized")


@pytest.mark.parametrize(
    ("new", "kind"),
    [
        ("short1!", "string_too_short"),
        ("password123", "password_too_weak"),
        ("qwertyuiop", "password_too_weak"),
        ("demo-password", "password_too_weak"),
        ("qian.wei@example.com", "password_too_weak"),  # the user's own email
        (PASSWORD, "password_unchanged"),
        ("x" * 129, "string_too_long"),
    ],
)
async def test_a_weak_new_password_is_refused(
    client: httpx.AsyncClient, database: Database, new: str, kind: str
) -> None:
    person = await make_login_user(database)
    pair = await tokens(client, person.user.email)
    other = await tokens(client, person.user.email)
    body = assert_problem(
        await change(client, pair["access_token"], PASSWORD, new), 422, "validation_error"
    )
    [error] = body["errors"]
    assert (error["loc"], error["type"]) == (["body", "new_password"], kind)
    if kind == "password_too_weak":
        assert error["msg"].startswith("The password is too easy to guess.")
    assert (await stored_user(database, person)).version == 1
    assert (await refresh(client, other["refresh_token"])).status_code == 200
    assert (await login(client, person.user.email)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"new_password": NEW_PASSWORD},
        {"current_password": PASSWORD},
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "user_id": "x"},
        {"current_password": PASSWORD, "new_password": None},
    ],
)
async def test_a_password_change_needs_exactly_its_two_fields(
    client: httpx.AsyncClient, database: Database, body: dict
) -> None:
    person = await make_login_user(database)
    response = await client.post(PASSWORD_URL, json=body, headers=person.headers)
    assert_problem(response, 422, "validation_error")
    assert (await stored_user(database, person)).version == 1


async def test_wrong_current_passwords_are_throttled_like_failed_logins(
    database: Database,
) -> None:
    # An app of its own: the throttle's counts are the app's, and the shared one's are
    # shared by every test.
    app = create_app(make_settings(), database)
    limits: RateLimits = app.state.rate_limits
    person = await make_login_user(database)
    async with client_for(app, ip="127.0.0.9") as client:
        pair = await tokens(client, person.user.email)
        for _ in range(limits.logins.max_failures):
            response = await change(client, pair["access_token"], "guess", NEW_PASSWORD)
            assert_problem(response, 422, "validation_error")
        # Locked, even with the right password; and so is logging in.
        locked = await change(client, pair["access_token"], PASSWORD, NEW_PASSWORD)
        assert_problem(locked, 429, "rate_limited")
        assert int(locked.headers["retry-after"]) > 0
        assert_problem(await login(client, person.user.email), 429, "rate_limited")
    assert (await stored_user(database, person)).version == 1
    async with database.session() as session:
        revoked = await session.scalars(
            select(RefreshToken).where(RefreshToken.revoked_at.is_not(None))
        )
        assert revoked.all() == []
