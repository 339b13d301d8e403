"""Webhook endpoints through the API: who may manage them, URLs, secrets, the log."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from app.config import get_settings
from app.db import Database
from app.models.platform import AuditEntry, Event
from app.models.webhooks import WebhookSecret
from tests.factories import make_org, problem

URL = "/api/v1/webhooks"


@pytest.fixture
def allow_private() -> Iterator[None]:
    settings = get_settings()
    before = settings.webhook_allow_private_urls
    settings.webhook_allow_private_urls = True
    yield
    settings.webhook_allow_private_urls = before


async def test_only_the_director_manages_webhooks(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    body = {"url": "https://hooks.example.com/in", "events": ["customer.created"]}
    for person in (org.east_manager, org.east_rep1):
        problem(await client.post(URL, json=body, headers=person.headers), 403, "forbidden")
        problem(await client.get(URL, headers=person.headers), 403, "forbidden")
    problem(await client.get(URL), 401, "unauthorized")
    response = await client.post(URL, json=body, headers=org.director.headers)
    assert response.status_code == 201, response.text


async def test_create_shows_the_secret_once_and_records_an_event(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    response = await client.post(
        URL,
        json={
            "url": "https://hooks.example.com/in",
            "events": ["customer.updated", "customer.created", "customer.created"],
            "description": "CRM sync",
        },
        headers=org.director.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["customer.created", "customer.updated"]
    assert created["is_active"] is True and created["failing_since"] is None
    assert response.headers["location"] == f"{URL}/{created['id']}"
    assert response.headers["etag"] == '"1"'

    read = await client.get(f"{URL}/{created['id']}", headers=org.director.headers)
    assert "secret" not in read.json()
    listed = await client.get(URL, headers=org.director.headers)
    assert [w["id"] for w in listed.json()["items"]] == [created["id"]]
    assert "secret" not in listed.json()["items"][0]

    async with database.session() as session:
        event = (await session.scalars(select(Event).where(Event.type == "webhook.created"))).one()
        audit = (await session.scalars(select(AuditEntry))).all()
    assert event.data["url"] == "https://hooks.example.com/in"
    assert "secret" not in event.data
    assert all(created["secret"] not in str(a.after) for a in audit)


@pytest.mark.parametrize(
    ("url", "loc_type"),
    [
        ("ftp://hooks.example.com/in", "url_scheme"),
        ("http://127.0.0.1:9000/in", "url_not_allowed"),
        ("http://localhost/in", "url_not_allowed"),
        ("http://10.1.2.3/in", "url_not_allowed"),
        ("http://[::1]/in", "url_not_allowed"),
        ("http://169.254.169.254/latest", "url_not_allowed"),
        ("not a url", "url_parsing"),
        ("https://hooks.example.com/" + "a" * 2040, "url_too_long"),
    ],
)
async def test_urls_must_be_public_http(
    client: httpx.AsyncClient, database: Database, url: str, loc_type: str
) -> None:
    org = await make_org(database)
    response = await client.post(
        URL, json={"url": url, "events": ["*"]}, headers=org.director.headers
    )
    body = problem(response, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "url"], body
    assert body["errors"][0]["type"] == loc_type, body


async def test_private_urls_allowed_when_the_setting_says_so(
    client: httpx.AsyncClient, database: Database, allow_private: None
) -> None:
    org = await make_org(database)
    response = await client.post(
        URL, json={"url": "http://127.0.0.1:9000/in", "events": ["*"]}, headers=org.director.headers
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "events", [[], ["customer"], ["Customer.Created"], ["customer.*"], ["*", 3]]
)
async def test_event_types_are_names_or_star(
    client: httpx.AsyncClient, database: Database, events: list[object]
) -> None:
    org = await make_org(database)
    response = await client.post(
        URL,
        json={"url": "https://hooks.example.com/in", "events": events},
        headers=org.director.headers,
    )
    problem(response, 422, "validation_error")


async def test_update_honours_if_match_and_refuses_read_only_fields(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    created = (
        await client.post(
            URL,
            json={"url": "https://hooks.example.com/in", "events": ["*"]},
            headers=org.director.headers,
        )
    ).json()
    path = f"{URL}/{created['id']}"
    response = await client.patch(
        path,
        json={"events": ["customer.deleted"], "is_active": False, "description": None},
        headers={**org.director.headers, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.json()["events"] == ["customer.deleted"]
    assert response.json()["is_active"] is False
    assert response.headers["etag"] == '"2"'
    stale = await client.patch(
        path, json={"is_active": True}, headers={**org.director.headers, "If-Match": '"1"'}
    )
    problem(stale, 412, "version_conflict")
    for field, value in (("secret", "whsec_x"), ("failing_since", None), ("version", 9)):
        problem(
            await client.patch(path, json={field: value}, headers=org.director.headers),
            422,
            "validation_error",
        )
    problem(
        await client.patch(path, json={"url": None}, headers=org.director.headers),
        422,
        "validation_error",
    )


async def test_rotation_keeps_the_old_secret_signing_during_the_overlap(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    created = (
        await client.post(
            URL,
            json={"url": "https://hooks.example.com/in", "events": ["*"]},
            headers=org.director.headers,
        )
    ).json()
    path = f"{URL}/{created['id']}/rotate-secret"
    rotated = await client.post(path, json={"overlap_seconds": 3600}, headers=org.director.headers)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != created["secret"]
    assert rotated.json()["previous_secret_expires_at"]

    async with database.session() as session:
        rows = (
            await session.scalars(select(WebhookSecret).order_by(WebhookSecret.created_at))
        ).all()
    assert [r.secret for r in rows] == [created["secret"], new_secret]
    assert rows[0].expires_at is not None and rows[1].expires_at is None

    # Rotating with no overlap retires every older secret at once.
    again = await client.post(path, json={"overlap_seconds": 0}, headers=org.director.headers)
    async with database.session() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(WebhookSecret)
            .where(WebhookSecret.expires_at.is_(None))
        )
    assert count == 1
    assert again.json()["secret"] not in (created["secret"], new_secret)
    assert (await client.post(path, headers=org.director.headers)).status_code == 200  # no body
    problem(
        await client.post(path, json={"overlap_seconds": -1}, headers=org.director.headers),
        422,
        "validation_error",
    )


async def test_delete_and_unknown_ids(client: httpx.AsyncClient, database: Database) -> None:
    org = await make_org(database)
    created = (
        await client.post(
            URL,
            json={"url": "https://hooks.example.com/in", "events": ["*"]},
            headers=org.director.headers,
        )
    ).json()
    path = f"{URL}/{created['id']}"
    test = await client.post(f"{path}/test", headers=org.director.headers)
    assert test.status_code == 202, test.text
    problem(
        await client.delete(path, headers={**org.director.headers, "If-Match": '"7"'}),
        412,
        "version_conflict",
    )
    assert (await client.delete(path, headers=org.director.headers)).status_code == 204
    for method, sub in (("GET", ""), ("GET", "/deliveries"), ("POST", "/test")):
        problem(
            await client.request(method, path + sub, headers=org.director.headers),
            404,
            "not_found",
        )
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookSecret)) == 0


async def test_test_message_and_manual_retry_through_the_log(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    created = (
        await client.post(
            URL,
            json={"url": "https://hooks.example.com/in", "events": ["*"]},
            headers=org.director.headers,
        )
    ).json()
    path = f"{URL}/{created['id']}"
    queued = await client.post(f"{path}/test", headers=org.director.headers)
    assert queued.status_code == 202, queued.text
    delivery = queued.json()
    assert delivery["event_type"] == "webhook.test" and delivery["status"] == "pending"
    assert delivery["event_id"] is None and delivery["max_attempts"] == 1

    log = await client.get(
        f"{path}/deliveries", params={"status": "pending"}, headers=org.director.headers
    )
    assert [d["id"] for d in log.json()["items"]] == [delivery["id"]]
    none = await client.get(
        f"{path}/deliveries", params={"status": "failed"}, headers=org.director.headers
    )
    assert none.json()["items"] == []
    problem(
        await client.get(
            f"{path}/deliveries", params={"status": "lost"}, headers=org.director.headers
        ),
        422,
        "validation_error",
    )

    retried = await client.post(
        f"{path}/deliveries/{delivery['id']}/retry", headers=org.director.headers
    )
    assert retried.status_code == 202, retried.text
    assert retried.json()["status"] == "pending"
    other = await client.post(
        URL,
        json={"url": "https://other.example.com/in", "events": ["*"]},
        headers=org.director.headers,
    )
    problem(
        await client.post(
            f"{URL}/{other.json()['id']}/deliveries/{delivery['id']}/retry",
            headers=org.director.headers,
        ),
        404,
        "not_found",
    )

    await client.patch(path, json={"is_active": False}, headers=org.director.headers)
    body = problem(await client.post(f"{path}/test", headers=org.director.headers), 409, "conflict")
    assert body["reason"] == "endpoint_inactive"
