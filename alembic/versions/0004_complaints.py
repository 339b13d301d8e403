"""complaints: complaints with SLA due times and escalation; their progress updates

Revision ID: 0004_complaints
Revises: 0003_contracts
Create Date: 2026-11-25 15:36:26.289151
"""

from collections.abc import Sequence

import sqlalchemy as sa

import app.models.types
from alembic import op

revision: str = "0004_complaints"
down_revision: str | None = "0003_contracts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "complaints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("received_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_by_id", sa.Uuid(), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("region_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "acknowledge_due_at", app.models.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("resolve_due_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", app.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("resolution_details", sa.Text(), nullable=True),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("root_cause", sa.Text(), nullable=True),
        sa.Column("corrective_action", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["users.id"], name=op.f("fk_complaints_assignee_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_complaints_contract_id_contracts")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_complaints_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_complaints_owner_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["received_by_id"], ["users.id"], name=op.f("fk_complaints_received_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["region_id"], ["regions.id"], name=op.f("fk_complaints_region_id_regions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaints")),
    )
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.create_index(
            "ix_complaints_acknowledge_due_at", ["acknowledge_due_at"], unique=False
        )
        batch_op.create_index("ix_complaints_assignee", ["assignee_id"], unique=False)
        batch_op.create_index("ix_complaints_customer", ["customer_id"], unique=False)
        batch_op.create_index(
            "ix_complaints_owner_created", ["owner_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_complaints_region_created", ["region_id", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_complaints_resolve_due_at", ["resolve_due_at"], unique=False)
        batch_op.create_index("ix_complaints_status", ["status"], unique=False)

    op.create_table(
        "complaint_updates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("complaint_id", sa.Uuid(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", app.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_complaint_updates_author_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["complaint_id"],
            ["complaints.id"],
            name=op.f("fk_complaint_updates_complaint_id_complaints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaint_updates")),
    )
    with op.batch_alter_table("complaint_updates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_complaint_updates_complaint_id"), ["complaint_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("complaint_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_complaint_updates_complaint_id"))

    op.drop_table("complaint_updates")
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_index("ix_complaints_status")
        batch_op.drop_index("ix_complaints_resolve_due_at")
        batch_op.drop_index("ix_complaints_region_created")
        batch_op.drop_index("ix_complaints_owner_created")
        batch_op.drop_index("ix_complaints_customer")
        batch_op.drop_index("ix_complaints_assignee")
        batch_op.drop_index("ix_complaints_acknowledge_due_at")

    op.drop_table("complaints")
