"""live contract per opportunity: a cancelled contract frees its won opportunity

Revision ID: 0012_live_contract
Revises: 0011_user_self_service

One contract per opportunity counts the live ones only: a contract cancelled before
signing no longer blocks a new contract for the same won opportunity. The unique
constraint on ``contracts.opportunity_id`` becomes a unique index over the contracts that
are not cancelled (partial, on PostgreSQL and SQLite alike), beside a plain index for
finding every contract of an opportunity.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_live_contract"
down_revision: str | None = "0011_user_self_service"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("status <> 'cancelled'")


def upgrade() -> None:
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_contracts_opportunity_id", type_="unique")
        batch_op.create_index(
            "ix_contracts_opportunity_id", ["opportunity_id"], unique=False
        )
        batch_op.create_index(
            "uq_contracts_opportunity_live",
            ["opportunity_id"],
            unique=True,
            sqlite_where=LIVE,
            postgresql_where=LIVE,
        )


def downgrade() -> None:
    # Fails, as it should, while an opportunity has a cancelled contract beside another.
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.drop_index("uq_contracts_opportunity_live")
        batch_op.drop_index("ix_contracts_opportunity_id")
        batch_op.create_unique_constraint("uq_contracts_opportunity_id", ["opportunity_id"])
