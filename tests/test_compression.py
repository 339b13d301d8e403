"""gzip for large answers (lists, reports, the OpenAPI document) and not for small ones."""

from __future__ import annotations

import gzip
import json

import httpx

from app.db import Database
from app.main import GZIP_MINIMUM_SIZE
from app.models.people import Role
from tests.factories import make_customer, make_user

GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


async def test_a_large_answer_is_gzipped_when_the_client_accepts_it(
    client: httpx.AsyncClient,
) -> None:
    plain = await client.get("/openapi.json", headers=IDENTITY)
    assert plain.status_code == 200
    assert "content-encoding" not in plain.headers
    # Vary tells caches the answer differs by Accept-Encoding, compressed or not.
    assert "Accept-Encoding" in plain.headers["vary"]
    assert len(plain.content) > 100_000

    # httpx would decompress on its own: read the bytes as they came.
    async with client.stream("GET", "/openapi.json", headers=GZIP) as zipped:
        assert zipped.headers["content-encoding"] == "gzip"
        assert "Accept-Encoding" in zipped.headers["vary"]
        raw = b"".join([part async for part in zipped.aiter_raw()])
    assert int(zipped.headers["content-length"]) == len(raw) < len(plain.content) / 5
    assert json.loads(gzip.decompress(raw)) == plain.json()


async def test_a_small_answer_is_never_gzipped(
    client: httpx.AsyncClient, database: Database
) -> None:
    rep = await make_user(database, Role.REP)
    customer = await make_customer(database, rep)
    async with client.stream(
        "GET", f"/api/v1/customers/{customer.id}", headers={**GZIP, **rep.headers}
    ) as answer:
        raw = b"".join([part async for part in answer.aiter_raw()])
    assert answer.status_code == 200
    assert len(raw) < GZIP_MINIMUM_SIZE
    assert "content-encoding" not in answer.headers
    assert json.loads(raw)["id"] == str(customer.id)
    assert answer.headers["etag"].startswith('"1-')  # the version, and the names' digest


async def test_a_long_list_is_gzipped_and_reads_the_same(
    client: httpx.AsyncClient, database: Database
) -> None:
    rep = await make_user(database, Role.REP)
    for n in range(20):
        await make_customer(database, rep, f"Customer {n:02} with a long enough name Ltd")
    params = {"limit": "50", "sort": "name"}
    plain = await client.get(
        "/api/v1/customers", params=params, headers={**IDENTITY, **rep.headers}
    )
    async with client.stream(
        "GET", "/api/v1/customers", params=params, headers={**GZIP, **rep.headers}
    ) as zipped:
        raw = b"".join([part async for part in zipped.aiter_raw()])
    assert len(plain.content) >= GZIP_MINIMUM_SIZE
    assert zipped.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(raw)) == plain.json()
