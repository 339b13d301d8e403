"""report scope: owner and region on payments and stage changes

Revision ID: 0008_report_scope
Revises: 0007_scale_indexes

A region's quarter was picked out of the whole company's rows: payments and state changes
carried no owner or region, so the summary read every payment of three quarters and the
funnel every stage change of the quarter, each joined to the region's contracts or
opportunities (about 200 and 400 ms at a million contracts). Each row now carries the owner
and region of what it belongs to, with an index on (scope, date):

- payments: the contract's owner and region (a contract keeps both for good), filled in
  when the payment is recorded;
- state_changes: the resource's owner and region when it has them (opportunities,
  contracts, complaints; quotes have none), filled in by the workflow and moved with the
  resource when a customer is reassigned (``app.workflow.follow_owner``); and when the
  resource entered the state the change leaves (``from_state_at``: the change before, or
  its creation) and when it last moved on to the funnel's next stage (``next_state_at``),
  so the funnel reads only the period's changes, no history.

The new (scope, time) indexes of stage changes, and the opportunities' indexes of won and
open ones, carry the columns the funnel and the pipeline figures read, so those reads touch
no table rows; a partial index lists the deleted opportunities the funnel leaves out.

The backfill is one UPDATE a table. On PostgreSQL it rewrites every row of both tables
(about a minute for 3 million payments and 8 million changes); run ``VACUUM ANALYZE`` on
them afterwards, or let autovacuum do it, so index-only scans see the new rows as visible.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models.types import UTCDateTime

revision: str = "0008_report_scope"
down_revision: str | None = "0007_scale_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What the funnel reads of each change, carried in the (scope, time) indexes.
_FUNNEL_READS = ["from_state", "to_state", "from_state_at", "next_state_at"]
# The sales funnel's stages in order, as they were when this migration was written.
_FUNNEL = ["lead", "contacted", "needs_analysis", "proposal", "negotiation", "won"]
_OPEN = sa.text(
    "deleted_at IS NULL AND stage IN "
    "('lead', 'contacted', 'needs_analysis', 'proposal', 'negotiation')"
)

# Which table holds the owner and region of a state change's resource.
_OWNED = {"opportunity": "opportunities", "contract": "contracts", "complaint": "complaints"}


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("region_id", sa.Uuid(), nullable=True))
    with op.batch_alter_table("state_changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("from_state_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("next_state_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("owner_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("region_id", sa.Uuid(), nullable=True))

    # UPDATE … FROM: PostgreSQL, and SQLite since 3.33.
    op.execute(
        "UPDATE payments SET owner_id = c.owner_id, region_id = c.region_id "
        "FROM contracts c WHERE c.id = payments.contract_id"
    )
    for entity_type, table in _OWNED.items():
        op.execute(
            f"UPDATE state_changes SET owner_id = r.owner_id, region_id = r.region_id, "
            f"from_state_at = r.created_at "
            f"FROM {table} r WHERE state_changes.entity_type = '{entity_type}' "
            f"AND r.id = state_changes.entity_id"
        )
    op.execute(
        "UPDATE state_changes SET from_state_at = r.created_at FROM quotes r "
        "WHERE state_changes.entity_type = 'quote' AND r.id = state_changes.entity_id"
    )
    # A stay began with the change before, where there is one (else at creation, as above).
    op.execute(
        "UPDATE state_changes SET from_state_at = p.previous_at FROM ("
        " SELECT id, lag(at) OVER (PARTITION BY entity_type, entity_id ORDER BY at, id)"
        " AS previous_at FROM state_changes) p"
        " WHERE p.id = state_changes.id AND p.previous_at IS NOT NULL"
    )
    # A change into a funnel stage moved on when a later change went to the stage after it.
    following = " ".join(f"WHEN '{a}' THEN '{b}'" for a, b in zip(_FUNNEL, _FUNNEL[1:]))
    op.execute(
        "UPDATE state_changes SET next_state_at = n.reached FROM ("
        " SELECT e.id AS id, max(l.at) AS reached FROM state_changes e"
        " JOIN state_changes l ON l.entity_type = e.entity_type"
        " AND l.entity_id = e.entity_id AND l.at >= e.at"
        f" AND l.to_state = CASE e.to_state {following} END"
        " WHERE e.entity_type = 'opportunity' GROUP BY e.id) n"
        " WHERE n.id = state_changes.id"
    )

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.alter_column("owner_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_payments_owner_id_users"), "users", ["owner_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_payments_region_id_regions"), "regions", ["region_id"], ["id"]
        )
        batch_op.create_index(
            "ix_payments_region_received", ["region_id", "received_on", "amount"], unique=False
        )
        batch_op.create_index(
            "ix_payments_owner_received", ["owner_id", "received_on", "amount"], unique=False
        )
    with op.batch_alter_table("state_changes", schema=None) as batch_op:
        for scope in ("region_id", "owner_id"):
            batch_op.create_index(
                f"ix_state_changes_{scope.removesuffix('_id')}_at",
                ["entity_type", scope, "at", "entity_id", *_FUNNEL_READS],
                unique=False,
            )
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        for scope in ("region_id", "owner_id"):
            name = scope.removesuffix("_id")
            batch_op.drop_index(f"ix_opportunities_{name}_won")
            batch_op.create_index(
                f"ix_opportunities_{name}_won",
                [scope, "won_at", "stage", "amount", "deleted_at"],
                unique=False,
            )
            batch_op.drop_index(f"ix_opportunities_{name}_open")
            batch_op.create_index(
                f"ix_opportunities_{name}_open",
                [scope, "expected_close_date", "stage", "amount", "probability"],
                unique=False,
                sqlite_where=_OPEN,
                postgresql_where=_OPEN,
            )
        batch_op.create_index(
            "ix_opportunities_deleted",
            ["region_id", "owner_id", "id"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NOT NULL"),
            postgresql_where=sa.text("deleted_at IS NOT NULL"),
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE payments")
        op.execute("ANALYZE state_changes")


def downgrade() -> None:
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.drop_index("ix_opportunities_deleted")
        for scope in ("region_id", "owner_id"):
            name = scope.removesuffix("_id")
            batch_op.drop_index(f"ix_opportunities_{name}_open")
            batch_op.create_index(
                f"ix_opportunities_{name}_open",
                [scope, "expected_close_date"],
                unique=False,
                sqlite_where=_OPEN,
                postgresql_where=_OPEN,
            )
            batch_op.drop_index(f"ix_opportunities_{name}_won")
            batch_op.create_index(f"ix_opportunities_{name}_won", [scope, "won_at"], unique=False)
    with op.batch_alter_table("state_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_state_changes_owner_at")
        batch_op.drop_index("ix_state_changes_region_at")
        batch_op.drop_column("region_id")
        batch_op.drop_column("owner_id")
        batch_op.drop_column("next_state_at")
        batch_op.drop_column("from_state_at")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_owner_received")
        batch_op.drop_index("ix_payments_region_received")
        batch_op.drop_constraint(batch_op.f("fk_payments_region_id_regions"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_payments_owner_id_users"), type_="foreignkey")
        batch_op.drop_column("region_id")
        batch_op.drop_column("owner_id")
