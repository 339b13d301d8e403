"""The figures the performance reports are built from: one aggregate query per kind of figure
(signed revenue and new customers, collected payments, targets, won and lost, pipeline,
satisfaction, complaints, market sizes), for the groups of scopes of
``services.figure_scopes``.

Every figure is computed for a group of scopes of one kind at once (``GROUP BY`` the owner or
the region), over index ranges of the period; periods are local to the department's time
zone. Each actual is one pass over the period, the period before and the same period a year
before (conditional sums).

Each statement is built once per shape (the kind of scope, how many periods, the dialect) with
the scopes, the periods' bounds and the time as bound parameters, and executed with their
values: building a dozen ``CASE`` expressions and their cache keys anew on every request was
most of a summary's CPU (bench/README.md). The SQL sent is the same as when built with values.

Each figure function adds its statements to a report's ``Batch`` and answers a ``Later``: the
report runs the batch (one round trip on PostgreSQL) and then reads the values.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, func, select
from sqlalchemy.orm import aliased

from app.models.complaints import Complaint, ComplaintStatus
from app.models.contracts import Contract, ContractStatus, Payment
from app.models.customers import FollowUp, FollowUpKind, FollowUpStatus
from app.models.performance import MarketSize, Metric, Target, TargetScope
from app.models.pipeline import OPEN_STAGES, STAGE_PROBABILITY, Opportunity, Stage
from app.models.types import utcnow
from app.periods import Period
from app.services.complaint_sla import breached_clause
from app.services.figure_scopes import (
    SCOPE_IDS,
    Batch,
    Key,
    Later,
    in_periods,
    money,
    per_scope,
    period_bounds,
    period_params,
    within,
)
from app.services.sql import constant_in, days_between_sql

NOT_SIGNED_REVENUE = (ContractStatus.CANCELLED, ContractStatus.TERMINATED)


Actuals = dict[Key, list[Decimal]]
"""Per scope, one actual per period asked for, in that order."""


@cache
def _contract_statement(kind: TargetScope, periods: int, count_new_customers: bool) -> Select[Any]:
    ranges, in_any = in_periods(Contract.signed_at, periods)
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
    return per_scope(kind, select(*columns).where(in_any), Contract.owner_id, Contract.region_id)


def contract_actuals(
    batch: Batch,
    periods: Sequence[Period],
    zone: str,
    *,
    count_new_customers: bool = True,
) -> Later[tuple[Actuals, Actuals]]:
    """Signed revenue and new customers, from one pass over the contracts signed in the periods.

    Signed revenue: contracts by signing date, not cancelled or terminated. New customers:
    customers whose first signed contract that was not cancelled was signed in the period,
    counted where the contracts signed at that first instant belong (the index on customer and
    signing time finds each customer's first in a step)."""
    stmt = _contract_statement(batch.group.kind, len(periods), count_new_customers)
    bounds = [p.utc_bounds(zone) for p in periods]
    n = len(periods)

    def actuals(rows: dict[Key, tuple[Any, ...]]) -> tuple[Actuals, Actuals]:
        return (
            {key: [money(v) for v in values[:n]] for key, values in rows.items()},
            {key: [Decimal(v or 0) for v in values[n:]] for key, values in rows.items()},
        )

    return batch.grouped(stmt, period_params(bounds)).map(actuals)


def signed_revenue(batch: Batch, periods: Sequence[Period], zone: str) -> Later[Actuals]:
    contracts = contract_actuals(batch, periods, zone, count_new_customers=False)
    return contracts.map(lambda actuals: actuals[0])


@cache
def _payment_statement(kind: TargetScope, periods: int) -> Select[Any]:
    ranges, in_any = in_periods(Payment.received_on, periods)
    stmt = select(*(func.sum(case((r, Payment.amount))) for r in ranges)).where(in_any)
    return per_scope(kind, stmt, Payment.owner_id, Payment.region_id)


def collected_payments(batch: Batch, periods: Sequence[Period]) -> Later[Actuals]:
    """Payments by receipt date (a local date already: no time zone)."""
    stmt = _payment_statement(batch.group.kind, len(periods))
    params = period_params([(p.start, p.end) for p in periods])
    return batch.grouped(stmt, params).map(
        lambda rows: {key: [money(v) for v in values] for key, values in rows.items()}
    )


@cache
def _target_statement(kind: TargetScope) -> Select[Any]:
    stmt = select(Target.scope_id, Target.metric, Target.value).where(
        Target.period == bindparam("period"), Target.scope == kind
    )
    if kind == TargetScope.COMPANY:
        return stmt.where(Target.scope_id.is_(None))
    return stmt.where(Target.scope_id.in_(bindparam(SCOPE_IDS, expanding=True)))


def targets(batch: Batch, period: Period) -> Later[dict[tuple[Key, Metric], Decimal]]:
    stmt = _target_statement(batch.group.kind)
    params = {**batch.group.params, "period": period.label}
    return batch.rows(stmt, params).map(
        lambda rows: {(scope_id, Metric(metric)): money(value) for scope_id, metric, value in rows}
    )


def _probability() -> Any:
    default = case(
        *((Opportunity.stage == stage, STAGE_PROBABILITY[stage]) for stage in OPEN_STAGES), else_=0
    )
    return func.coalesce(Opportunity.probability, default)


@cache
def _pipeline_statement(kind: TargetScope) -> Select[Any]:
    start, end = period_bounds()
    stmt = select(
        func.sum(Opportunity.amount), func.sum(Opportunity.amount * _probability())
    ).where(
        Opportunity.deleted_at.is_(None),
        constant_in(Opportunity.stage, OPEN_STAGES),
        Opportunity.expected_close_date >= start,
        Opportunity.expected_close_date < end,
    )
    return per_scope(kind, stmt, Opportunity.owner_id, Opportunity.region_id)


def pipeline(batch: Batch, period: Period) -> Later[dict[Key, tuple[Decimal, Decimal]]]:
    """The value of the open opportunities expected to close in the period, and weighted."""
    stmt = _pipeline_statement(batch.group.kind)
    return batch.grouped(stmt, {"start": period.start, "end": period.end}).map(
        lambda rows: {
            key: (money(amount), money(Decimal(str(weighted or 0)) / 100))
            for key, (amount, weighted) in rows.items()
        }
    )


@cache
def _won_lost_statement(kind: TargetScope, dialect: str) -> Select[Any]:
    start, end = period_bounds()
    won_flag = case((Opportunity.stage == Stage.WON, 1), else_=0)
    cycle = case(
        (
            Opportunity.stage == Stage.WON,
            days_between_sql(dialect, Opportunity.created_at, Opportunity.won_at),
        ),
        else_=None,
    )
    stmt = select(func.sum(won_flag), func.count(), func.avg(cycle)).where(
        Opportunity.deleted_at.is_(None),
        Opportunity.closed_at >= start,
        Opportunity.closed_at < end,
        Opportunity.stage.in_((Stage.WON, Stage.LOST)),
    )
    return per_scope(kind, stmt, Opportunity.owner_id, Opportunity.region_id)


def won_lost(
    batch: Batch, period: Period, zone: str
) -> Later[dict[Key, tuple[int, int, float | None]]]:
    """Opportunities won and lost in the period, and the mean days from creation to a win."""
    start, end = period.utc_bounds(zone)
    stmt = _won_lost_statement(batch.group.kind, batch.dialect)
    return batch.grouped(stmt, {"start": start, "end": end}).map(_won_lost_figures)


def _won_lost_figures(
    rows: dict[Key, tuple[Any, ...]],
) -> dict[Key, tuple[int, int, float | None]]:
    figures = {}
    for key, (won_count, closed, days) in rows.items():
        won = int(won_count or 0)
        figures[key] = (
            won,
            int(closed or 0) - won,
            None if days is None else round(float(days), 2),
        )
    return figures


@cache
def _satisfaction_statements(kind: TargetScope) -> tuple[Select[Any], Select[Any]]:
    """Return visits' and closed complaints' sums and counts of scores."""
    start, end = period_bounds()
    visits = select(func.sum(FollowUp.satisfaction), func.count(FollowUp.satisfaction)).where(
        FollowUp.kind == FollowUpKind.RETURN_VISIT,
        FollowUp.status == FollowUpStatus.DONE,
        FollowUp.satisfaction.is_not(None),
        within(FollowUp.occurred_at, start, end),
    )
    complaints = select(func.sum(Complaint.satisfaction), func.count(Complaint.satisfaction)).where(
        Complaint.status == ComplaintStatus.CLOSED,
        Complaint.satisfaction.is_not(None),
        within(Complaint.closed_at, start, end),
    )
    return (
        # The customer's owner and region, as copied onto each follow-up.
        per_scope(kind, visits, FollowUp.customer_owner_id, FollowUp.customer_region_id),
        per_scope(kind, complaints, Complaint.owner_id, Complaint.region_id),
    )


def satisfaction(batch: Batch, period: Period, zone: str) -> Later[dict[Key, float | None]]:
    """The mean score of return visits (scoped by their customer) and closed complaints in the
    period."""
    start, end = period.utc_bounds(zone)
    params = {"start": start, "end": end}
    visits, complaints = (
        batch.grouped(stmt, params) for stmt in _satisfaction_statements(batch.group.kind)
    )
    return Later(lambda: _mean_scores(visits.value, complaints.value))


def _mean_scores(*sums_and_counts: dict[Key, tuple[Any, ...]]) -> dict[Key, float | None]:
    totals: dict[Key, list[int]] = {}
    for rows in sums_and_counts:
        for key, (score, count) in rows.items():
            total = totals.setdefault(key, [0, 0])
            total[0] += int(score or 0)
            total[1] += int(count or 0)
    return {key: None if n == 0 else round(score / n, 4) for key, (score, n) in totals.items()}


@cache
def _complaint_statement(kind: TargetScope) -> Select[Any]:
    start, end = period_bounds()
    breached = case((breached_clause(bindparam("now")), 1), else_=0)
    stmt = select(func.count(), func.sum(breached)).where(within(Complaint.received_at, start, end))
    return per_scope(kind, stmt, Complaint.owner_id, Complaint.region_id)


def complaints(batch: Batch, period: Period, zone: str) -> Later[dict[Key, tuple[int, int]]]:
    """Complaints received in the period, and how many of them are past an SLA deadline."""
    start, end = period.utc_bounds(zone)
    params = {"start": start, "end": end, "now": utcnow()}
    return batch.grouped(_complaint_statement(batch.group.kind), params).map(
        lambda rows: {key: (int(count or 0), int(late or 0)) for key, (count, late) in rows.items()}
    )


@cache
def _market_size_statement(kind: TargetScope) -> Select[Any]:
    stmt = select(func.sum(MarketSize.value)).where(MarketSize.period == bindparam("period"))
    return per_scope(kind, stmt, None, MarketSize.region_id)


def market_sizes(batch: Batch, period: Period) -> Later[dict[Key, Any]]:
    """The market size of each region (of the company: their sum) in the period; reps have
    none."""
    if batch.group.kind == TargetScope.REP:
        return Later(dict)
    stmt = _market_size_statement(batch.group.kind)
    return batch.grouped(stmt, {"period": period.label}).map(
        lambda rows: {key: size for key, (size,) in rows.items()}
    )
