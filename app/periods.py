"""Reporting periods: a year (``2026``), a quarter (``2026-Q3``) or a month (``2026-07``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

PERIOD_PATTERN = r"^(19|20|21)\d{2}(-Q[1-4]|-(0[1-9]|1[0-2]))?$"
_PERIOD = re.compile(PERIOD_PATTERN)


@dataclass(frozen=True)
class Period:
    """A half-open range of local dates ``[start, end)``."""

    label: str
    start: date
    end: date

    @property
    def months(self) -> int:
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month

    def utc_bounds(self, zone: str) -> tuple[datetime, datetime]:
        """The period's start and end as UTC instants, midnight to midnight in ``zone``."""
        tz = ZoneInfo(zone)
        return (
            datetime.combine(self.start, time(), tz).astimezone(UTC),
            datetime.combine(self.end, time(), tz).astimezone(UTC),
        )

    def shifted(self, months: int) -> Period:
        """The period of the same kind ``months`` later (negative: earlier)."""
        start = _add_months(self.start, months)
        end = _add_months(self.end, months)
        return Period(label=_label(start, self.months), start=start, end=end)

    def previous(self) -> Period:
        return self.shifted(-self.months)

    def year_before(self) -> Period:
        return self.shifted(-12)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _label(start: date, months: int) -> str:
    if months == 12:
        return f"{start.year}"
    if months == 3:
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return f"{start.year}-{start.month:02d}"


def parse_period(label: str) -> Period:
    """The period a label names; ValueError when it names none."""
    if not _PERIOD.match(label):
        raise ValueError("a period is YYYY, YYYY-Qn or YYYY-MM")
    year = int(label[:4])
    if len(label) == 4:
        start, months = date(year, 1, 1), 12
    elif label[5] == "Q":
        start, months = date(year, (int(label[6]) - 1) * 3 + 1, 1), 3
    else:
        start, months = date(year, int(label[5:7]), 1), 1
    return Period(label=label, start=start, end=_add_months(start, months))


def period_containing(day: date, kind_of: Period) -> Period:
    """The period of the same length as ``kind_of`` that contains ``day``."""
    months = kind_of.months
    first_month = ((day.month - 1) // months) * months + 1 if months < 12 else 1
    start = date(day.year, first_month, 1)
    return Period(label=_label(start, months), start=start, end=_add_months(start, months))
