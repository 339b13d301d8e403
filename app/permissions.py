"""Roles, permissions and scope: who may do what, and which rows they can see at all.

A row outside the caller's scope is never loaded (404); a visible row the role may not
change is a 403. Scope is always part of the SQL query, never a filter after loading.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, bindparam, false, true
from sqlalchemy.orm import InstrumentedAttribute

from app.models.people import Role


class Permission(StrEnum):
    REGIONS_MANAGE = "regions:manage"
    USERS_READ = "users:read"
    USERS_MANAGE = "users:manage"
    CUSTOMERS_READ = "customers:read"
    CUSTOMERS_WRITE = "customers:write"
    CUSTOMERS_DELETE = "customers:delete"
    CUSTOMERS_ASSIGN = "customers:assign"
    CUSTOMERS_CLASSIFY = "customers:classify"
    AUDIT_READ = "audit:read"
    EVENTS_READ = "events:read"
    WEBHOOKS_MANAGE = "webhooks:manage"
    PRODUCTS_MANAGE = "products:manage"
    PIPELINE_READ = "pipeline:read"
    PIPELINE_WRITE = "pipeline:write"
    PIPELINE_DELETE = "pipeline:delete"
    APPROVALS_READ = "approvals:read"
    COMPLAINTS_READ = "complaints:read"
    COMPLAINTS_WRITE = "complaints:write"
    COMPLAINTS_ASSIGN = "complaints:assign"
    # Escalate by hand; change severity and received_at (what the SLA is measured from).
    COMPLAINTS_MANAGE = "complaints:manage"
    CONTRACTS_READ = "contracts:read"
    CONTRACTS_WRITE = "contracts:write"
    SETTINGS_MANAGE = "settings:manage"
    TARGETS_READ = "targets:read"
    TARGETS_MANAGE = "targets:manage"
    MARKET_SIZES_MANAGE = "market_sizes:manage"
    PERFORMANCE_READ = "performance:read"


_REP = frozenset(
    {
        Permission.CUSTOMERS_READ,
        Permission.CUSTOMERS_WRITE,
        Permission.EVENTS_READ,
        Permission.PIPELINE_READ,
        Permission.PIPELINE_WRITE,
        Permission.APPROVALS_READ,
        Permission.COMPLAINTS_READ,
        Permission.COMPLAINTS_WRITE,
        # Every role drafts and runs contracts in its scope; who reviews or terminates one
        # is the contract workflow's business.
        Permission.CONTRACTS_READ,
        Permission.CONTRACTS_WRITE,
        Permission.TARGETS_READ,
        Permission.PERFORMANCE_READ,
    }
)
_MANAGER = _REP | {
    Permission.USERS_READ,
    Permission.USERS_MANAGE,
    Permission.CUSTOMERS_DELETE,
    Permission.CUSTOMERS_ASSIGN,
    Permission.CUSTOMERS_CLASSIFY,
    Permission.AUDIT_READ,
    Permission.PIPELINE_DELETE,
    Permission.COMPLAINTS_ASSIGN,
    Permission.COMPLAINTS_MANAGE,
    Permission.TARGETS_MANAGE,
}
_DIRECTOR = _MANAGER | {
    Permission.REGIONS_MANAGE,
    Permission.WEBHOOKS_MANAGE,
    Permission.PRODUCTS_MANAGE,
    Permission.SETTINGS_MANAGE,
    Permission.MARKET_SIZES_MANAGE,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.REP: _REP,
    Role.REGIONAL_MANAGER: frozenset(_MANAGER),
    Role.DIRECTOR: frozenset(_DIRECTOR),
}


@dataclass(frozen=True)
class Actor:
    """The authenticated user a request acts for."""

    id: uuid.UUID
    role: Role
    region_id: uuid.UUID | None
    email: str = ""
    # Shown as ``owner_name`` on what the actor writes and owns.
    full_name: str = ""

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    @property
    def is_director(self) -> bool:
        return self.role is Role.DIRECTOR

    @property
    def is_manager(self) -> bool:
        return self.role is Role.REGIONAL_MANAGER


SCOPE_OWNER = "scope_owner"
SCOPE_REGION = "scope_region"
"""The bound parameters a scope condition compares with: the caller's id and region."""


def _scope(
    role: Role,
    owner_column: InstrumentedAttribute[uuid.UUID] | InstrumentedAttribute[uuid.UUID | None],
    region_column: InstrumentedAttribute[uuid.UUID | None],
    actor: Actor | None,
) -> ColumnElement[bool]:
    """Rows a caller of ``role`` may see: own for reps, their region's for managers, all for
    the director. With ``actor`` the parameters carry its values; without, they are left to
    ``scope_params`` at execution (a statement built once per role)."""
    if role is Role.DIRECTOR:
        return true()
    if role is Role.REGIONAL_MANAGER:
        if actor is None:
            return region_column == bindparam(SCOPE_REGION)
        if actor.region_id is None:
            return false()
        return region_column == bindparam(SCOPE_REGION, actor.region_id)
    if actor is None:
        return owner_column == bindparam(SCOPE_OWNER)
    return owner_column == bindparam(SCOPE_OWNER, actor.id)


def scope_filter(
    actor: Actor,
    owner_column: InstrumentedAttribute[uuid.UUID] | InstrumentedAttribute[uuid.UUID | None],
    region_column: InstrumentedAttribute[uuid.UUID | None],
) -> ColumnElement[bool]:
    """Rows the actor may see: own for reps, their region's for managers, all for the director."""
    return _scope(actor.role, owner_column, region_column, actor)


def scope_template(
    role: Role,
    owner_column: InstrumentedAttribute[uuid.UUID] | InstrumentedAttribute[uuid.UUID | None],
    region_column: InstrumentedAttribute[uuid.UUID | None],
) -> ColumnElement[bool]:
    """``scope_filter`` for any caller of ``role``, executed with ``scope_params(actor)`` (a
    manager without a region then matches nothing, as ``false()`` does)."""
    return _scope(role, owner_column, region_column, None)


def scope_params(actor: Actor) -> dict[str, uuid.UUID | None]:
    """The values of a ``scope_template``'s parameters for this caller."""
    return {SCOPE_OWNER: actor.id, SCOPE_REGION: actor.region_id}
