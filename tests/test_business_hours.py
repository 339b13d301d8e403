"""Working-hour due times across nights, weekends, days and time zones. Inputs are given in
UTC, as the API stores them; the department's hours are local."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.business_hours import add_working_hours
from app.services.department import BusinessHours

SHANGHAI = BusinessHours(time_zone="Asia/Shanghai")  # Mon–Fri 09:00–18:00, UTC+8
BERLIN = BusinessHours(time_zone="Europe/Berlin")
NEW_YORK = BusinessHours(time_zone="America/New_York")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(
    ("start_local", "hours", "due_local"),
    [
        # The handbook's example: Friday 17:00 + 9 working hours = Monday 17:00.
        ("2026-07-03 17:00", 9, "2026-07-06 17:00"),
        # Within one day, and ending exactly at closing time (not the next opening).
        ("2026-07-06 09:00", 3, "2026-07-06 12:00"),
        ("2026-07-06 09:00", 9, "2026-07-06 18:00"),
        ("2026-07-06 17:59", 0.5, "2026-07-07 09:29"),
        # Outside hours: counting starts at the next opening.
        ("2026-07-07 22:00", 2, "2026-07-08 11:00"),  # Tuesday night
        ("2026-07-07 06:00", 2, "2026-07-07 11:00"),  # Tuesday early morning
        ("2026-07-03 18:00", 1, "2026-07-06 10:00"),  # Friday at closing time
        ("2026-07-04 11:00", 1, "2026-07-06 10:00"),  # Saturday
        ("2026-07-05 23:59", 9, "2026-07-06 18:00"),  # Sunday night
        ("2026-07-06 00:00", 0, "2026-07-06 09:00"),
        # Several days, and across a weekend.
        ("2026-07-06 10:00", 30, "2026-07-09 13:00"),  # Mon 8 + Tue 9 + Wed 9 + Thu 4
        ("2026-07-09 15:00", 20, "2026-07-13 17:00"),  # Thu 3 + Fri 9 + Mon 8
        ("2026-07-03 17:00", 9 * 6, "2026-07-13 17:00"),  # and a whole week more
    ],
)
def test_shanghai_due_times(start_local: str, hours: float, due_local: str) -> None:
    start = local(start_local, "Asia/Shanghai").astimezone(UTC)
    due = add_working_hours(start, hours, SHANGHAI)
    assert due.tzinfo is UTC
    assert due == local(due_local, "Asia/Shanghai")


def test_friday_afternoon_given_in_utc_is_due_monday_afternoon_in_shanghai() -> None:
    # 09:00 UTC is 17:00 in Shanghai; Monday 17:00 there is 09:00 UTC.
    assert add_working_hours(utc("2026-07-03 09:00"), 9, SHANGHAI) == utc("2026-07-06 09:00")


def test_the_local_date_not_the_utc_date_decides_the_day() -> None:
    # Sunday 23:00 UTC is already Monday 07:00 in Shanghai: Monday's hours count.
    assert add_working_hours(utc("2026-07-05 23:00"), 1, SHANGHAI) == utc("2026-07-06 02:00")
    # Saturday 02:00 UTC is still Friday 22:00 in New York: nothing counts until Monday.
    assert add_working_hours(utc("2026-07-04 02:00"), 1, NEW_YORK) == utc("2026-07-06 14:00")


def test_berlin_summer_and_winter_time() -> None:
    # CEST (UTC+2): Friday 17:00 local is 15:00 UTC; Monday 17:00 local is 15:00 UTC.
    assert add_working_hours(utc("2026-07-03 15:00"), 9, BERLIN) == utc("2026-07-06 15:00")
    # CET (UTC+1).
    assert add_working_hours(utc("2026-01-09 16:00"), 9, BERLIN) == utc("2026-01-12 16:00")


def test_a_clock_change_over_the_weekend_keeps_local_hours() -> None:
    # Summer time ends on Sunday 25 October 2026: Friday 17:00 CEST (15:00 UTC) + 9 working
    # hours is Monday 17:00 CET, which is 16:00 UTC.
    assert add_working_hours(utc("2026-10-23 15:00"), 9, BERLIN) == utc("2026-10-26 16:00")


def test_other_hours_and_working_days() -> None:
    # A Sunday-to-Thursday week, 08:30 to 12:00.
    week = BusinessHours(
        time_zone="Asia/Dubai", start=time(8, 30), end=time(12, 0), working_days=[6, 0, 1, 2, 3]
    )
    # Thursday 11:00 + 2 working hours: 1 on Thursday, then Sunday 08:30 + 1.
    start = local("2026-07-09 11:00", "Asia/Dubai")
    assert add_working_hours(start, 2, week) == local("2026-07-12 09:30", "Asia/Dubai")


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        add_working_hours(datetime(2026, 7, 3, 17, 0), 9, SHANGHAI)
    with pytest.raises(ValueError, match="negative"):
        add_working_hours(utc("2026-07-03 09:00"), -1, SHANGHAI)
    closed = BusinessHours(time_zone="UTC", start=time(9), end=time(18), working_days=[])
    with pytest.raises(ValueError, match="working day"):
        add_working_hours(utc("2026-07-03 09:00"), 1, closed)


moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
durations = st.integers(min_value=1, max_value=60 * 24 * 10).map(lambda m: m / 60)


@settings(max_examples=200, deadline=None)
@given(start=moments, first=durations, second=durations, zone=st.sampled_from([SHANGHAI, BERLIN]))
def test_due_times_fall_in_working_hours_and_add_up(
    start: datetime, first: float, second: float, zone: BusinessHours
) -> None:
    due = add_working_hours(start, first, zone)
    assert due > start
    at = due.astimezone(ZoneInfo(zone.time_zone))
    assert at.weekday() in zone.working_days
    assert zone.start < at.time() <= zone.end
    # Counting on from a due time is counting the sum from the start.
    both = add_working_hours(start, first + second, zone)
    assert abs(add_working_hours(due, second, zone) - both) < timedelta(microseconds=10)
