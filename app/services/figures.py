"""The figures the performance reports are built from: scopes and groups of scopes, and one
aggregate query per kind of figure (signed revenue and new customers, collected payments,
targets, won and lost, pipeline, satisfaction, complaints, market sizes).

Every figure is computed for a group of scopes of one kind at once (``GROUP BY`` the owner or
the region), over index ranges of the period; periods are local to the department's time
zone. Each actual is one pass over the period, the period before and the same period a year
before (conditional sums).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.models.complaints import Complaint, ComplaintStatus
from app.models.contracts import Contract, ContractStatus, Payment
from app.models.customers import FollowUp, FollowUpKind, FollowUpStatus
from app.models.performance import MarketSize, Metric, Target, TargetScope
from app.models.pipeline import OPEN_STAGES, STAGE_PROBABILITY, Opportunity, Stage
from app.models.types import CENT, utcnow
from app.periods import Period
from app.services.complaint_sla import breached_clause
from app.services.sql import days_between

NOT_SIGNED_REVENUE = (ContractStatus.CANCELLED, ContractStatus.TERMINATED)


Key = uuid.UUID | None
"""Which scope of a group a figure belongs to: a rep's or region's id, None for the company."""


@dataclass(frozen=True)
class Scope:
    """Whose figures: the company, one region, or one rep."""

    kind: TargetScope
    id: uuid.UUID | None = None

    def clause(self, owner: Any, region: Any) -> ColumnElement[bool]:
        if self.kind == TargetScope.REGION:
            return region == self.id
        if self.kind == TargetScope.REP:
            return owner == self.id
        return true()


@dataclass(frozen=True)
class Group:
    """Scopes of one kind whose figures are computed together: the regions or reps in ``ids``,
    or (kind company, no ids) the company."""

    kind: TargetScope
    ids: tuple[uuid.UUID, ...] = ()

    @classmethod
    def of(cls, scope: Scope) -> Group:
        return cls(scope.kind, () if scope.id is None else (scope.id,))

    @property
    def keys(self) -> list[Key]:
        return [None] if self.kind == TargetScope.COMPANY else list(self.ids)

    def column(self, owner: Any, region: Any) -> Any:
        """The column that tells the scopes apart; None for the company."""
        if self.kind == TargetScope.REGION:
            return region
        if self.kind == TargetScope.REP:
            return owner
        return None

    def clause(self, owner: Any, region: Any) -> ColumnElement[bool]:
        column = self.column(owner, region)
        if column is None:
            return true()
        return column == self.ids[0] if len(self.ids) == 1 else column.in_(self.ids)


def ratio(part: Decimal | int | None, whole: Decimal | int | None) -> float | None:
    """part ÷ whole, or None where that is undefined (no whole, or a zero one)."""
    if part is None or whole is None or whole == 0:
        return None
    return round(float(Decimal(part) / Decimal(whole)), 6)


def growth(now: Decimal, before: Decimal) -> float | None:
    return None if before == 0 else round(float((now - before) / before), 6)


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT)


def _within(column: Any, start: Any, end: Any) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


def _in_periods(
    column: Any, bounds: Sequence[tuple[Any, Any]]
) -> tuple[list[ColumnElement[bool]], ColumnElement[bool]]:
    """Each period's condition, and a condition for a row in any of them that also bounds
    the column by the whole span, so an index on (scope, column) is read over that span only
    rather than over all the scope's rows (PostgreSQL takes no range from an OR)."""
    ranges = [_within(column, start, end) for start, end in bounds]
    span = _within(column, min(b[0] for b in bounds), max(b[1] for b in bounds))
    return ranges, and_(span, or_(*ranges))


async def _grouped(
    session: AsyncSession, column: Any, stmt: Select[Any]
) -> dict[Key, tuple[Any, ...]]:
    """The aggregates of ``stmt`` per value of ``column`` (scopes without rows are missing), or
    over all its rows under the key None when there is no column."""
    if column is None:
        return {None: tuple((await session.execute(stmt)).one())}
    rows = (await session.execute(stmt.add_columns(column).group_by(column))).all()
    return {row[-1]: tuple(row[:-1]) for row in rows}


Actuals = dict[Key, list[Decimal]]
"""Per scope, one actual per period asked for, in that order."""


async def contract_actuals(
    session: AsyncSession,
    group: Group,
    periods: Sequence[Period],
    zone: str,
    *,
    count_new_customers: bool = True,
) -> tuple[Actuals, Actuals]:
    """Signed revenue and new customers, from one pass over the contracts signed in the periods.

    Signed revenue: contracts by signing date, not cancelled or terminated. New customers:
    customers whose first signed contract that was not cancelled was signed in the period,
    counted where the contracts signed at that first instant belong (the index on customer and
    signing time finds each customer's first in a step)."""
    ranges, in_any = _in_periods(Contract.signed_at, [p.utc_bounds(zone) for p in periods])
    revenue = Contract.status.not_in(NOT_SIGNED_REVENUE)
    columns = [func.sum(case((and_(r, revenue), Contract.amount))) for r in ranges]
    if count_new_customers:
        earlier = aliased(Contract)
        first_signed = (
            select(func.min(earlier.signed_at))
            .where(
                earlier.customer_id == Contract.customer_id,
                earlier.status != ContractStatus.CANCELLED,
            )
            .scalar_subquery()
        )
        # The range comes first: the lookup runs only for the rows of that period.
        columns += [
            func.count(case((and_(r, Contract.signed_at == first_signed), 1))) for r in ranges
        ]
    stmt = select(*columns).where(group.clause(Contract.owner_id, Contract.region_id), in_any)
    rows = await _grouped(session, group.column(Contract.owner_id, Contract.region_id), stmt)
    n = len(ranges)
    return (
        {key: [_money(v) for v in values[:n]] for key, values in rows.items()},
        {key: [Decimal(v or 0) for v in values[n:]] for key, values in rows.items()},
    )


async def signed_revenue(
    session: AsyncSession, group: Group, periods: Sequence[Period], zone: str
) -> Actuals:
    revenue, _ = await contract_actuals(session, group, periods, zone, count_new_customers=False)
    return revenue


async def new_customers(
    session: AsyncSession, group: Group, periods: Sequence[Period], zone: str
) -> Actuals:
    return (await contract_actuals(session, group, periods, zone))[1]


async def collected_payments(
    session: AsyncSession, group: Group, periods: Sequence[Period], zone: str
) -> Actuals:
    """Payments by receipt date (a local date already: ``zone`` is not needed)."""
    ranges, in_any = _in_periods(Payment.received_on, [(p.start, p.end) for p in periods])
    stmt = select(*(func.sum(case((r, Payment.amount))) for r in ranges)).where(
        in_any, group.clause(Payment.owner_id, Payment.region_id)
    )
    rows = await _grouped(session, group.column(Payment.owner_id, Payment.region_id), stmt)
    return {key: [_money(v) for v in values] for key, values in rows.items()}


async def targets(
    session: AsyncSession, group: Group, period: Period
) -> dict[tuple[Key, Metric], Decimal]:
    stmt = select(Target.scope_id, Target.metric, Target.value).where(
        Target.period == period.label, Target.scope == group.kind
    )
    if group.kind == TargetScope.COMPANY:
        stmt = stmt.where(Target.scope_id.is_(None))
    else:
        stmt = stmt.where(Target.scope_id.in_(group.ids))
    rows = (await session.execute(stmt)).all()
    return {(scope_id, Metric(metric)): _money(value) for scope_id, metric, value in rows}


def _probability() -> Any:
    default = case(
        *((Opportunity.stage == stage, STAGE_PROBABILITY[stage]) for stage in OPEN_STAGES), else_=0
    )
    return func.coalesce(Opportunity.probability, default)


async def _pipeline(
    session: AsyncSession, group: Group, period: Period
) -> dict[Key, tuple[Decimal, Decimal]]:
    stmt = select(
        func.sum(Opportunity.amount), func.sum(Opportunity.amount * _probability())
    ).where(
        group.clause(Opportunity.owner_id, Opportunity.region_id),
        Opportunity.deleted_at.is_(None),
        Opportunity.stage.in_(OPEN_STAGES),
        Opportunity.expected_close_date >= period.start,
        Opportunity.expected_close_date < period.end,
    )
    rows = await _grouped(session, group.column(Opportunity.owner_id, Opportunity.region_id), stmt)
    return {
        key: (_money(amount), _money(Decimal(str(weighted or 0)) / 100))
        for key, (amount, weighted) in rows.items()
    }


async def won_lost(
    session: AsyncSession, group: Group, period: Period, zone: str
) -> dict[Key, tuple[int, int, float | None]]:
    """Opportunities won and lost in the period, and the mean days from creation to a win."""
    start, end = period.utc_bounds(zone)
    won_flag = case((Opportunity.stage == Stage.WON, 1), else_=0)
    cycle = case(
        (
            Opportunity.stage == Stage.WON,
            days_between(session, Opportunity.created_at, Opportunity.won_at),
        ),
        else_=None,
    )
    stmt = select(func.sum(won_flag), func.count(), func.avg(cycle)).where(
        group.clause(Opportunity.owner_id, Opportunity.region_id),
        Opportunity.deleted_at.is_(None),
        Opportunity.closed_at >= start,
        Opportunity.closed_at < end,
        Opportunity.stage.in_((Stage.WON, Stage.LOST)),
    )
    rows = await _grouped(session, group.column(Opportunity.owner_id, Opportunity.region_id), stmt)
    figures = {}
    for key, (won_count, closed, days) in rows.items():
        won = int(won_count or 0)
        figures[key] = (
            won,
            int(closed or 0) - won,
            None if days is None else round(float(days), 2),
        )
    return figures


async def satisfaction(
    session: AsyncSession, group: Group, period: Period, zone: str
) -> dict[Key, float | None]:
    """The mean score of return visits (scoped by their customer) and closed complaints in the
    period."""
    start, end = period.utc_bounds(zone)
    visits = select(func.sum(FollowUp.satisfaction), func.count(FollowUp.satisfaction)).where(
        FollowUp.kind == FollowUpKind.RETURN_VISIT,
        FollowUp.status == FollowUpStatus.DONE,
        FollowUp.satisfaction.is_not(None),
        _within(FollowUp.occurred_at, start, end),
        # The customer's owner and region, as copied onto each follow-up.
        group.clause(FollowUp.customer_owner_id, FollowUp.customer_region_id),
    )
    complaints = select(func.sum(Complaint.satisfaction), func.count(Complaint.satisfaction)).where(
        group.clause(Complaint.owner_id, Complaint.region_id),
        Complaint.status == ComplaintStatus.CLOSED,
        Complaint.satisfaction.is_not(None),
        _within(Complaint.closed_at, start, end),
    )
    totals: dict[Key, list[int]] = {}
    for column, stmt in (
        (group.column(FollowUp.customer_owner_id, FollowUp.customer_region_id), visits),
        (group.column(Complaint.owner_id, Complaint.region_id), complaints),
    ):
        for key, (score, count) in (await _grouped(session, column, stmt)).items():
            total = totals.setdefault(key, [0, 0])
            total[0] += int(score or 0)
            total[1] += int(count or 0)
    return {key: None if n == 0 else round(score / n, 4) for key, (score, n) in totals.items()}


async def _complaints(
    session: AsyncSession, group: Group, period: Period, zone: str
) -> dict[Key, tuple[int, int]]:
    start, end = period.utc_bounds(zone)
    breached = case((breached_clause(utcnow()), 1), else_=0)
    stmt = select(func.count(), func.sum(breached)).where(
        group.clause(Complaint.owner_id, Complaint.region_id),
        _within(Complaint.received_at, start, end),
    )
    rows = await _grouped(session, group.column(Complaint.owner_id, Complaint.region_id), stmt)
    return {key: (int(count or 0), int(late or 0)) for key, (count, late) in rows.items()}


async def market_sizes(session: AsyncSession, group: Group, period: Period) -> dict[Key, Any]:
    """The market size of each region (of the company: their sum) in the period; reps have
    none."""
    if group.kind == TargetScope.REP:
        return {}
    stmt = select(func.sum(MarketSize.value)).where(
        MarketSize.period == period.label, group.clause(None, MarketSize.region_id)
    )
    rows = await _grouped(session, group.column(None, MarketSize.region_id), stmt)
    return {key: size for key, (size,) in rows.items()}
