"""Working-hour arithmetic: when a task given N working hours at some moment falls due.

Working hours are the department's business hours (e.g. Monday–Friday 09:00–18:00) in its
time zone, counted on the wall clock. Time outside them does not count: a task arriving on a
Friday at 17:00 with 9 working hours is due on Monday at 17:00 (1 hour on Friday, 8 on
Monday). Pure functions, so the rules are tested without a database or a clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


class Schedule(Protocol):
    """What the calculation needs (``app.services.department.BusinessHours`` has it)."""

    time_zone: str
    start: time
    end: time
    working_days: list[int]


def _opening(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone)


def add_working_hours(start: datetime, hours: float, schedule: Schedule) -> datetime:
    """The moment ``hours`` working hours after ``start`` (an aware datetime), in UTC.

    Counting begins at ``start`` if that is within working hours, else at the next opening;
    a period that ends exactly at closing time is due at closing time, not at the next
    opening.
    """
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime")
    if schedule.start >= schedule.end:
        raise ValueError("business hours must start before they end")
    working_days = {d for d in schedule.working_days if 0 <= d <= 6}
    if not working_days:
        raise ValueError("business hours need at least one working day")
    if hours < 0:
        raise ValueError("hours must not be negative")
    zone = ZoneInfo(schedule.time_zone)
    remaining = timedelta(hours=hours)
    cursor = start.astimezone(zone)
    day = cursor.date()
    while True:
        if day.weekday() in working_days:
            opens, closes = _opening(day, schedule.start, zone), _opening(day, schedule.end, zone)
            # Wall-clock arithmetic: aware datetimes of one zone subtract as local times.
            begin = max(cursor.replace(tzinfo=zone), opens)
            if begin < closes:
                available = closes - begin
                if remaining <= available:
                    return (begin + remaining).astimezone(UTC)
                remaining -= available
        day += timedelta(days=1)
        cursor = _opening(day, time(0, 0), zone)
