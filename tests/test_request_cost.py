"""What the per-request savings must not change: parsed department settings follow every
change of the row, remembered access tokens stay bound to their key and expiry, and the
customer reads that skip BEGIN and COMMIT on PostgreSQL answer as before."""

from __future__ import annotations

import asyncio
import gc
import uuid
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import update

from app import main, security
from app.db import Database
from app.models.contracts import ContractStatus
from app.models.customers import CustomerRead
from app.models.performance import SettingsRecord
from app.models.pipeline import Stage
from app.services import department
from tests.conftest import IS_POSTGRES
from tests.contract_helpers import make_contract
from tests.factories import etag_of, make_customer, make_org
from tests.pipeline_helpers import make_opportunity

SETTINGS = "/api/v1/settings"


async def _loaded(database: Database) -> department.DepartmentSettings:
    """The settings as a new request's transaction sees them."""
    async with database.session(write=False) as session, session.begin():
        return await department.load(session)


async def test_parsed_settings_follow_every_change_of_the_row(database: Database) -> None:
    assert (await _loaded(database)).dormant_after_days == 180  # no row: the defaults
    async with database.session() as session, session.begin():
        await department.update(session, {"dormant_after_days": 100}, None)
    first = await _loaded(database)
    assert first.dormant_after_days == 100
    # Unchanged row: the parsed settings are reused, not validated again.
    assert await _loaded(database) is first

    async with database.session() as session, session.begin():
        await department.update(session, {"dormant_after_days": 120}, 1)
    assert (await _loaded(database)).dormant_after_days == 120

    # Changed behind the ORM's back, version and time stamp as they were: still seen.
    async with database.session() as session, session.begin():
        record = await session.get(SettingsRecord, department.SETTINGS_ID)
        assert record is not None and record.version == 2
        data = {**record.data, "dormant_after_days": 130}
        await session.execute(
            update(SettingsRecord)
            .where(SettingsRecord.id == department.SETTINGS_ID)
            .values(data=data)
            .execution_options(synchronize_session=False)
        )
    assert (await _loaded(database)).dormant_after_days == 130

    # The row removed and made again at version 1 (as between tests): its data counts.
    async with database.session() as session, session.begin():
        await session.delete(await session.get(SettingsRecord, department.SETTINGS_ID))
    assert (await _loaded(database)).dormant_after_days == 180
    async with database.session() as session, session.begin():
        await department.update(session, {"dormant_after_days": 140}, None)
    assert (await _loaded(database)).dormant_after_days == 140


async def test_a_settings_change_applies_to_the_next_request(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    headers = org.director.headers
    for days, version in ((90, None), (91, '"1"'), (92, '"2"')):
        if_match = {"If-Match": version} if version else {}
        answer = await client.patch(
            SETTINGS, json={"dormant_after_days": days}, headers={**headers, **if_match}
        )
        assert answer.status_code == 200, answer.text
        current = await client.get(SETTINGS, headers=headers)
        assert current.json()["dormant_after_days"] == days
        assert (await _loaded(database)).dormant_after_days == days


def test_remembered_tokens_keep_to_their_key_and_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "a-key-that-is-long-enough-for-hs256-signing-0001"
    user = uuid.uuid4()
    token, lifetime = security.create_access_token(key, user, "rep", None, minutes=5)
    claims = security.decode_access_token(key, token)
    assert claims is not None and claims.user_id == user
    assert security.decode_access_token(key, token) is claims  # remembered
    # Another key: verified afresh, and refused.
    assert security.decode_access_token(key.replace("0001", "0002"), token) is None
    # After its expiry a remembered token is refused like any other.
    exp = int(claims.expires_at.timestamp())
    monkeypatch.setattr(security.time, "time", lambda: exp + 1.0)
    assert security.decode_access_token(key, token) is None
    monkeypatch.setattr(security.time, "time", lambda: exp + 0.5 - 1)
    assert security.decode_access_token(key, token) is claims
    # A tampered token is another string, verified and refused.
    assert (
        security.decode_access_token(key, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
        is None
    )
    assert lifetime == 300


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A "BEGIN" for every transaction asyncpg starts during the test (the test clears it
    once its set-up is done)."""
    import asyncpg.transaction

    begun: list[str] = []
    start = asyncpg.transaction.Transaction.start

    async def counted(self: asyncpg.transaction.Transaction) -> None:
        begun.append("BEGIN")
        await start(self)

    monkeypatch.setattr(asyncpg.transaction.Transaction, "start", counted)
    return begun


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL reads run without a transaction")
async def test_customer_reads_run_without_begin_and_commit_on_postgres(
    client: httpx.AsyncClient, database: Database, started: list[str]
) -> None:
    org = await make_org(database)
    customer = await make_customer(database, org.east_rep1)
    started.clear()
    headers = org.east_rep1.headers
    one = await client.get(f"/api/v1/customers/{customer.id}", headers=headers)
    page = await client.get("/api/v1/customers", params={"limit": 50}, headers=headers)
    assert one.status_code == 200 and one.headers["etag"] == etag_of(CustomerRead, one)
    assert page.status_code == 200 and [c["id"] for c in page.json()["items"]] == [str(customer.id)]
    assert started == []
    # Out of scope is still a 404, and writes still run in a transaction.
    other = await client.get(f"/api/v1/customers/{customer.id}", headers=org.north_rep.headers)
    assert other.status_code == 404
    changed = await client.patch(
        f"/api/v1/customers/{customer.id}", json={"industry": "textiles"}, headers=headers
    )
    assert changed.status_code == 200, changed.text
    assert started == ["BEGIN"]


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL reads run without a transaction")
async def test_the_summary_and_leaderboard_send_their_figures_in_one_statement(
    client: httpx.AsyncClient, database: Database, started: list[str], sent: list[str]
) -> None:
    """Nine figure statements for a summary, six for a leaderboard: each one round trip on
    PostgreSQL, with no BEGIN and COMMIT around it, and the figures as before."""
    org = await make_org(database)
    first = await make_contract(database, org.east_rep1, ContractStatus.SIGNED, list_price="1200")
    second = await make_contract(database, org.east_rep2, ContractStatus.SIGNED, list_price="300")
    started.clear()
    sent.clear()
    headers = org.east_manager.headers
    summary = await client.get("/api/v1/performance/summary", headers=headers)
    board = await client.get("/api/v1/performance/leaderboard", headers=headers)
    assert summary.status_code == 200, summary.text
    assert board.status_code == 200, board.text
    assert started == []
    figures = [sql for sql in sent if "ARRAY(SELECT ROW(r.*)" in sql]
    assert [sql.count("ARRAY(SELECT ROW(r.*)") for sql in figures] == [9, 6]
    signed = summary.json()["metrics"]["signed_revenue"]["actual"]
    assert Decimal(signed) == first.amount + second.amount
    revenue = {item["scope_id"]: Decimal(item["signed_revenue"]) for item in board.json()["items"]}
    assert revenue == {str(org.east_rep1.id): first.amount, str(org.east_rep2.id): second.amount}


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL runs an UPDATE in a WITH")
async def test_a_move_reads_when_its_stage_began_and_stamps_the_stay_before_in_one_statement(
    client: httpx.AsyncClient, database: Database, sent: list[str], executed: list[str]
) -> None:
    """The move from lead to contacted closes the stay in lead (``next_state_at``) and needs
    the time that stay began: one statement. ``tests/test_report_scope.py`` checks the
    values on both databases."""
    org = await make_org(database)
    opp = await make_opportunity(database, org.east_rep1, Stage.LEAD, needs_summary=None)
    path = f"/api/v1/opportunities/{opp.id}/transitions"
    # To contacted and back: the next move has an earlier stay in lead to stamp.
    for body in ({"to": "contacted"}, {"to": "lead", "note": "Not yet."}):
        answer = await client.post(path, json=body, headers=org.east_rep1.headers)
        assert answer.status_code == 200, answer.text
    sent.clear()
    executed.clear()
    moved = await client.post(path, json={"to": "contacted"}, headers=org.east_rep1.headers)
    assert moved.status_code == 200, moved.text
    # The Reads' statements, then the session's.
    touching = [sql for sql in (*sent, *executed) if "state_changes" in sql]
    stamps = [sql for sql in touching if "UPDATE state_changes" in sql]
    assert len(stamps) == 1 and "max(state_changes.at)" in stamps[0]
    # Besides it, only the new change's INSERT (with the move's other queued rows).
    assert len(touching) == 2 and "INSERT INTO state_changes" in touching[1]


async def test_one_statement_per_role_serves_every_caller_of_it(
    client: httpx.AsyncClient, database: Database
) -> None:
    """The customer and opportunity reads run statements built once per role with the
    caller's id and region bound at execution: each caller still sees only their own."""
    org = await make_org(database)
    mine = await make_customer(database, org.east_rep1)
    theirs = await make_customer(database, org.east_rep2)
    north = await make_customer(database, org.north_rep)
    expected = [
        (org.east_rep1, {mine.id}),
        (org.east_rep2, {theirs.id}),
        (org.north_rep, {north.id}),
        (org.east_manager, {mine.id, theirs.id}),
        (org.north_manager, {north.id}),
        (org.director, {mine.id, theirs.id, north.id}),
    ]
    for _ in range(2):  # the second time round, every statement comes from the cache
        for person, visible in expected:
            for customer in (mine, theirs, north):
                answer = await client.get(
                    f"/api/v1/customers/{customer.id}", headers=person.headers
                )
                assert answer.status_code == (200 if customer.id in visible else 404), (
                    person.user.email,
                    customer.name,
                )


async def test_reads_in_flight_set_off_no_young_collection(
    client: httpx.AsyncClient, database: Database
) -> None:
    """The young generation has room for what requests in flight hold (app.main): 16
    customer reads at a time (with the test client's own objects beside them), over and
    over, are then collected by reference counting alone, where CPython's default
    threshold sets off a collection every few requests."""
    org = await make_org(database)
    customers = [await make_customer(database, org.east_rep1) for _ in range(8)]
    headers = org.east_rep1.headers
    paths = [f"/api/v1/customers/{c.id}" for c in customers] * 2

    async def read_all() -> None:
        answers = await asyncio.gather(*(client.get(p, headers=headers) for p in paths))
        assert {a.status_code for a in answers} == {200}

    async def collections_while_reading() -> list[int]:
        started: list[int] = []

        def count(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started.append(info["generation"])

        gc.collect()
        gc.callbacks.append(count)
        try:
            for _ in range(5):
                await read_all()
        finally:
            gc.callbacks.remove(count)
        return started

    await read_all()  # the caches a first request fills (statements, tokens) are filled

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, *before[1:])  # CPython's default
        default = await collections_while_reading()
        assert len(default) > 10
        main.size_young_generation()  # as the app's start-up does
        assert gc.get_threshold()[0] == main.YOUNG_GENERATION_THRESHOLD
        assert await collections_while_reading() == []
    finally:
        gc.set_threshold(*before)
