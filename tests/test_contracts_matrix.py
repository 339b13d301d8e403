"""Every contract status move for every role, from the very table the code uses: allowed moves
succeed (each reviewer at their own step), moves the table lacks are 409 invalid_transition
with ``current`` and ``allowed``, and moves of another role are 403."""

from __future__ import annotations

import itertools

import httpx
import pytest

from app.db import Database
from app.models.contracts import ContractStatus, ReviewStep
from app.models.people import Role
from app.services.contract_workflow import CONTRACT_TRANSITIONS
from tests.contract_helpers import API, make_contract, move
from tests.factories import Org, Person, make_org, problem

ROLES = (Role.REP, Role.REGIONAL_MANAGER, Role.DIRECTOR)
BODY_EXTRAS = {"note": "As agreed.", "reason": "Customer insolvent."}


def _caller(org: Org, role: Role) -> Person:
    return {
        Role.REP: org.east_rep1,
        Role.REGIONAL_MANAGER: org.east_manager,
        Role.DIRECTOR: org.director,
    }[role]


def _expect(current: str, to: str, role: Role) -> tuple[int, list[str]]:
    moves = CONTRACT_TRANSITIONS.get(current, {})
    allowed = [state for state, rule in moves.items() if role in rule.roles]
    rule = moves.get(to)
    if rule is None:
        return 409, allowed
    return (200 if role in rule.roles else 403), allowed


@pytest.mark.parametrize(
    ("current", "to", "role"),
    list(itertools.product(list(ContractStatus), list(ContractStatus), ROLES)),
)
async def test_contract_move(
    client: httpx.AsyncClient,
    database: Database,
    current: ContractStatus,
    to: ContractStatus,
    role: Role,
) -> None:
    org = await make_org(database)
    # Under review, the contract waits at the caller's own step (a small contract, so the
    # manager's approval is the last one).
    step = ReviewStep.DIRECTOR if role is Role.DIRECTOR else ReviewStep.MANAGER
    contract = await make_contract(database, org.east_rep1, current, review_step=step)

    response = await move(client, _caller(org, role), contract.id, to, **BODY_EXTRAS)

    status, allowed = _expect(current, to, role)
    if status == 409:
        body = problem(response, 409, "invalid_transition")
        assert body["current"] == current and body["allowed"] == allowed
    elif status == 403:
        problem(response, 403, "forbidden")
    else:
        assert response.status_code == 200, response.text
        assert response.json()["status"] == to
    history = (
        await client.get(f"{API}/contracts/{contract.id}/history", headers=org.director.headers)
    ).json()["items"]
    expected = [(current.value, to.value)] if status == 200 else []
    assert [(h["from_state"], h["to_state"]) for h in history] == expected


async def test_completed_is_never_taken_by_hand(
    client: httpx.AsyncClient, database: Database
) -> None:
    org = await make_org(database)
    contract = await make_contract(database, org.east_rep1, ContractStatus.IN_PROGRESS)
    for person in (org.east_rep1, org.east_manager, org.director):
        body = problem(
            await move(client, person, contract.id, "completed"), 409, "invalid_transition"
        )
        assert "completed" not in body["allowed"]
