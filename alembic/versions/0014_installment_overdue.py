"""collection: installments reported overdue once

Revision ID: 0014_installment_overdue
Revises: 0013_complaint_breached_at

The worker raises ``installment.overdue`` once per installment that falls overdue and plans
a collection follow-up for the contract's owner; ``overdue_notified_at`` is its marker, and a
partial index keeps the sweep to the unpaid installments not reported yet. Installments
overdue already when this runs are reported by the first sweep.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models.types import UTCDateTime

revision: str = "0014_installment_overdue"
down_revision: str | None = "0013_complaint_breached_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNREPORTED = "overdue_notified_at IS NULL AND status != 'paid'"


def upgrade() -> None:
    with op.batch_alter_table("installments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("overdue_notified_at", UTCDateTime(timezone=True), nullable=True)
        )
    op.create_index(
        "ix_installments_overdue_unreported",
        "installments",
        ["due_date"],
        sqlite_where=sa.text(_UNREPORTED),
        postgresql_where=sa.text(_UNREPORTED),
    )


def downgrade() -> None:
    op.drop_index("ix_installments_overdue_unreported", table_name="installments")
    with op.batch_alter_table("installments", schema=None) as batch_op:
        batch_op.drop_column("overdue_notified_at")
