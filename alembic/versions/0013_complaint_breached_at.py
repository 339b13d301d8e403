"""complaint breaches kept: ``complaints.breached_at``

Revision ID: 0013_complaint_breached_at
Revises: 0012_live_contract

A breach is recorded when it is found, so that no later change of severity or
``received_at`` takes it back (``breached``, ``?breached=true`` and the reports' SLA
breaches read it). Every escalation before this revision was a breach's, so the backfill
dates each recorded breach at its escalation; breaches not escalated yet are recorded by the
worker's next sweep.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models.types import UTCDateTime

revision: str = "0013_complaint_breached_at"
down_revision: str | None = "0012_live_contract"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("breached_at", UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE complaints SET breached_at = escalated_at WHERE escalated_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_column("breached_at")
