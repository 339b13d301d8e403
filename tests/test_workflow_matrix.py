"""Every transition of the opportunity and quote tables, for every role, from the very tables
the code uses: allowed moves succeed, moves the table lacks are 409 invalid_transition with
``current`` and ``allowed``, and moves of another role are 403."""

from __future__ import annotations

import itertools

import httpx
import pytest

from app.db import Database
from app.models.people import Role
from app.models.pipeline import OPEN_STAGES, Stage
from app.models.quotes import QuoteStatus
from app.services.opportunities import STAGE_TRANSITIONS
from app.services.quotes import QUOTE_TRANSITIONS
from tests.factories import Org, Person, make_org, problem
from tests.pipeline_helpers import make_opportunity, make_quote

ROLES = (Role.REP, Role.REGIONAL_MANAGER, Role.DIRECTOR)
BODY_EXTRAS = {"note": "As agreed with the customer.", "lost_reason": "price"}


def _caller(org: Org, role: Role) -> Person:
    return {
        Role.REP: org.east_rep1,
        Role.REGIONAL_MANAGER: org.east_manager,
        Role.DIRECTOR: org.director,
    }[role]


def _expect(table, current: str, to: str, role: Role) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    moves = table.get(current, {})
    allowed = [state for state, rule in moves.items() if role in rule.roles]
    rule = moves.get(to)
    if rule is None:
        return 409, allowed
    return (200 if role in rule.roles else 403), allowed


@pytest.mark.parametrize(
    ("current", "to", "role"), list(itertools.product(list(Stage), list(Stage), ROLES))
)
async def test_opportunity_move(
    client: httpx.AsyncClient, database: Database, current: Stage, to: Stage, role: Role
) -> None:
    org = await make_org(database)
    lost_from = to if to in OPEN_STAGES else Stage.NEGOTIATION
    opp = await make_opportunity(
        database,
        org.east_rep1,
        current,
        lost_from_stage=lost_from if current == Stage.LOST else None,
    )
    if current in OPEN_STAGES:
        await make_quote(database, org.east_rep1, opp, QuoteStatus.ACCEPTED)
    caller = _caller(org, role)

    response = await client.post(
        f"/api/v1/opportunities/{opp.id}/transitions",
        json={"to": to, **BODY_EXTRAS},
        headers=caller.headers,
    )

    status, allowed = _expect(STAGE_TRANSITIONS, current, to, role)
    if status == 409:
        body = problem(response, 409, "invalid_transition")
        assert body["current"] == current and body["allowed"] == allowed
    elif status == 403:
        problem(response, 403, "forbidden")
    else:
        assert response.status_code == 200, response.text
        assert response.json()["stage"] == to
    history = (
        await client.get(f"/api/v1/opportunities/{opp.id}/history", headers=org.director.headers)
    ).json()["items"]
    expected_history = [(current.value, to.value)] if status == 200 else []
    assert [(h["from_state"], h["to_state"]) for h in history] == expected_history


@pytest.mark.parametrize(
    ("current", "to", "role"),
    list(itertools.product(list(QuoteStatus), list(QuoteStatus), ROLES)),
)
async def test_quote_move(
    client: httpx.AsyncClient,
    database: Database,
    current: QuoteStatus,
    to: QuoteStatus,
    role: Role,
) -> None:
    org = await make_org(database)
    opp = await make_opportunity(database, org.east_rep1, Stage.PROPOSAL)
    # A 5% discount is the region manager's to approve; approving on submit needs none.
    unit_price = None if (current, to) == (QuoteStatus.DRAFT, QuoteStatus.APPROVED) else "950.00"
    quote = await make_quote(database, org.east_rep1, opp, current, unit_price=unit_price)
    caller = _caller(org, role)

    response = await client.post(
        f"/api/v1/quotes/{quote.id}/transitions",
        json={"to": to, "note": "Checked."},
        headers=caller.headers,
    )

    status, allowed = _expect(QUOTE_TRANSITIONS, current, to, role)
    if status == 409:
        body = problem(response, 409, "invalid_transition")
        assert body["current"] == current and body["allowed"] == allowed
    elif status == 403:
        problem(response, 403, "forbidden")
    else:
        assert response.status_code == 200, response.text
        assert response.json()["status"] == to


async def test_another_reps_opportunity_does_not_exist_for_them(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    opp = await make_opportunity(database, org.east_rep1)
    for caller in (org.east_rep2, org.north_manager, org.north_rep):
        response = await client.post(
            f"/api/v1/opportunities/{opp.id}/transitions",
            json={"to": "contacted"},
            headers=caller.headers,
        )
        problem(response, 404, "not_found")
