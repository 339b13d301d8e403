"""report indexes: each report for a region or a rep and a period reads index ranges

Revision ID: 0006_report_indexes
Revises: 0005_performance

Found with ``bench/reports.py`` (1,000,000 contracts, 3,000,000 payments, 2,000,000
opportunities with 7.9 million stage changes), where a region's quarter took seconds:

- contracts by region / owner and signing time, with what signed revenue and new customers
  read of them, and by customer and signing time with the status, so a customer's first
  signed contract is one step into an index that answers it alone;
- opportunities by region / owner and close time (won and lost), win time (the funnel's won
  stage), the open ones by expected close date (pipeline, forecast, the funnel's counts), and
  the live ones by creation time (the funnel's scope);
- stage changes by type and time (the period's changes) and each opportunity's history in
  order with its states, read from the index alone;
- follow-ups by kind and time (return visits), complaints by region / owner and receipt or
  close time.

Plain ``CREATE INDEX``, which holds off writes to its table while it builds: 25–40 s in all
at that size, so a large deployment runs this migration in a quiet hour.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_report_indexes"
down_revision: str | None = "0005_performance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "deleted_at IS NULL"
OPEN = (
    "deleted_at IS NULL AND stage IN "
    "('lead', 'contacted', 'needs_analysis', 'proposal', 'negotiation')"
)

INDEXES: list[tuple[str, str, list[str], str | None]] = [
    (
        "contracts",
        "ix_contracts_region_signed",
        ["region_id", "signed_at", "status", "amount", "customer_id"],
        None,
    ),
    (
        "contracts",
        "ix_contracts_owner_signed",
        ["owner_id", "signed_at", "status", "amount", "customer_id"],
        None,
    ),
    ("contracts", "ix_contracts_customer_signed", ["customer_id", "signed_at", "status"], None),
    ("opportunities", "ix_opportunities_region_closed", ["region_id", "closed_at"], None),
    ("opportunities", "ix_opportunities_owner_closed", ["owner_id", "closed_at"], None),
    ("opportunities", "ix_opportunities_region_won", ["region_id", "won_at"], None),
    ("opportunities", "ix_opportunities_owner_won", ["owner_id", "won_at"], None),
    ("opportunities", "ix_opportunities_region_open", ["region_id", "expected_close_date"], OPEN),
    ("opportunities", "ix_opportunities_owner_open", ["owner_id", "expected_close_date"], OPEN),
    ("opportunities", "ix_opportunities_region_live", ["region_id", "created_at", "id"], LIVE),
    ("opportunities", "ix_opportunities_owner_live", ["owner_id", "created_at", "id"], LIVE),
    ("state_changes", "ix_state_changes_type_at", ["entity_type", "at", "entity_id"], None),
    (
        "state_changes",
        "ix_state_changes_history",
        ["entity_id", "entity_type", "at", "id", "from_state", "to_state"],
        None,
    ),
    ("follow_ups", "ix_follow_ups_kind_occurred", ["kind", "occurred_at"], None),
    ("complaints", "ix_complaints_region_received", ["region_id", "received_at"], None),
    ("complaints", "ix_complaints_owner_received", ["owner_id", "received_at"], None),
    ("complaints", "ix_complaints_region_closed", ["region_id", "closed_at"], None),
    ("complaints", "ix_complaints_owner_closed", ["owner_id", "closed_at"], None),
]


def upgrade() -> None:
    for table, name, columns, where in INDEXES:
        partial = (
            {}
            if where is None
            else {
                "postgresql_where": sa.text(where),
                "sqlite_where": sa.text(where),
            }
        )
        op.create_index(name, table, columns, unique=False, **partial)


def downgrade() -> None:
    for table, name, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
