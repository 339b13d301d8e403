"""Async factories: each makes one real row through the database and says what it made."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from app.config import Settings, get_settings
from app.db import Database
from app.models.base import ResourceRead
from app.models.customers import Customer, CustomerCreate
from app.models.people import Region, Role, User
from app.permissions import Actor
from app.routers.common import etag
from app.security import create_access_token, hash_password
from app.services import customers

_counter = itertools.count(1)


@dataclass
class Person:
    """A user with a ready access token, for calling the API as them."""

    user: User
    token: str

    @property
    def id(self) -> uuid.UUID:
        return self.user.id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def actor(self) -> Actor:
        return Actor(
            id=self.user.id,
            role=Role(self.user.role),
            region_id=self.user.region_id,
            email=self.user.email,
            full_name=self.user.full_name,
        )


async def make_region(database: Database, name: str | None = None) -> Region:
    async with database.session() as session, session.begin():
        region = Region(name=name or f"Region {next(_counter)}")
        session.add(region)
    return region


async def make_user(
    database: Database,
    role: Role,
    region: Region | None = None,
    *,
    password: str | None = None,
    is_active: bool = True,
    email: str | None = None,
) -> Person:
    async with database.session() as session, session.begin():
        user = User(
            email=email or f"user{next(_counter)}@example.com",
            full_name=f"{role.value.title()} {next(_counter)}",
            role=role,
            region_id=region.id if region else None,
            is_active=is_active,
            password_hash=await hash_password(password) if password else None,
        )
        session.add(user)
    token, _ = create_access_token(
        get_settings().signing_key(), user.id, user.role, user.region_id, 15
    )
    return Person(user=user, token=token)


async def make_customer(
    database: Database, owner: Person, name: str | None = None, phone: str | None = None
) -> Customer:
    async with database.session() as session, session.begin():
        session.info["actor_id"] = owner.id
        customer = await customers.create_customer(
            session,
            owner.actor,
            CustomerCreate(name=name or f"Customer {next(_counter)} Ltd", phone=phone),
        )
    return customer


@dataclass
class Org:
    """A small department: a director and two regions, each with a manager and two reps."""

    director: Person
    east: Region
    north: Region
    east_manager: Person
    north_manager: Person
    east_rep1: Person
    east_rep2: Person
    north_rep: Person


async def make_org(database: Database) -> Org:
    east, north = await make_region(database, "East"), await make_region(database, "North")
    return Org(
        director=await make_user(database, Role.DIRECTOR),
        east=east,
        north=north,
        east_manager=await make_user(database, Role.REGIONAL_MANAGER, east),
        north_manager=await make_user(database, Role.REGIONAL_MANAGER, north),
        east_rep1=await make_user(database, Role.REP, east),
        east_rep2=await make_user(database, Role.REP, east),
        north_rep=await make_user(database, Role.REP, north),
    )


def make_settings(**overrides: Any) -> Settings:
    """The test run's settings (its database and key), ignoring .env, with ``overrides``:
    for a test that builds an app of its own."""
    values: dict[str, Any] = {
        "database_url": get_settings().database_url,
        "secret_key": get_settings().signing_key(),
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


@asynccontextmanager
async def client_for(app: FastAPI, ip: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` (not the shared one), calling from ``ip``."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(ip, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def problem(response: httpx.Response, status: int, code: str) -> dict:
    """Assert ``response`` is a problem document with this status and code; return it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert body["type"].endswith("/" + code)
    return body


async def listed_as_read(
    client: httpx.AsyncClient,
    person: Person,
    collection: str,
    params: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The items of a list's first page, by id, after checking each is exactly what reading
    it answers (lists written from column values, ``app.answers``, must not drift from the
    read schema)."""
    listed = await client.get(f"/api/v1/{collection}", params=params, headers=person.headers)
    assert listed.status_code == 200, listed.text
    assert listed.headers["content-type"] == "application/json"
    items = {item["id"]: item for item in listed.json()["items"]}
    for item_id, item in items.items():
        read = await client.get(f"/api/v1/{collection}/{item_id}", headers=person.headers)
        assert read.status_code == 200, read.text
        assert item == read.json()
    return items


def etag_of(schema: type[ResourceRead], response: httpx.Response) -> str:
    """The ETag an answer with this body must carry: its version, and a digest of what it
    shows beside the row (names, the clock's verdicts) when there is any."""
    read = schema.model_validate(response.json())
    return etag(read.version, read.unversioned())
