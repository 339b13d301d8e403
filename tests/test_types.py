"""The portable column types: what is written is what is read back, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import select, text

from app.db import Database, driver_connection
from app.models.people import Region
from app.reads import Read
from tests.conftest import IS_POSTGRES

SHANGHAI = timezone(timedelta(hours=8))


async def test_timestamps_come_back_aware_in_utc_whatever_the_session_time_zone(
    database: Database,
) -> None:
    written = datetime(2026, 7, 1, 16, 30, 5, 123456, tzinfo=SHANGHAI)
    async with database.session() as session, session.begin():
        region = Region(name="Far East", created_at=written)
        session.add(region)
    async with database.session() as session, session.begin():
        if IS_POSTGRES:
            # asyncpg is trusted to answer in UTC (the column type does not convert on it):
            # a session in another zone must not change that.
            await session.execute(text("SET LOCAL TIME ZONE 'Asia/Shanghai'"))
        through_orm = await session.scalar(select(Region.created_at).where(Region.id == region.id))
        read = Read(select(Region.created_at).where(Region.id == region.id))
        through_driver = (await read.rows(await driver_connection(session), {}))[0][0]
    for value in (through_orm, through_driver):
        assert value == written
        assert value.utcoffset() == timedelta(0)
        assert value.tzinfo == UTC
        assert value.isoformat() == "2026-07-01T08:30:05.123456+00:00"
