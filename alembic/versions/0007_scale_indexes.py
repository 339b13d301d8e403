"""scale indexes: customer and follow-up lists at a million customers

Revision ID: 0007_scale_indexes
Revises: 0006_report_indexes

- customers (created_at, id) and follow_ups (created_at, id): the keyset order of the
  director's lists (and of any list whose filter matches many rows), so a page, first or
  deep, is an index range instead of a sort of the whole table. The customers one covers
  live customers only and carries follow_up_due_at, so ``overdue=true`` is checked in the
  index: recent customers are seldom overdue, and the walk from the newest skipped tens of
  thousands of them with a heap visit each.
- a trigram GIN index on customers.name_key (PostgreSQL, pg_trgm): ``q`` is a substring
  search (``name_key LIKE '%key%'``), which no B-tree can answer. On SQLite the same index
  is a plain one on name_key, as the model's dialect options leave it there.
- no index on customers.classification alone: three values, so it never narrows a page, and
  for a rep's list the planner intersected a bitmap of a tenth of the table (class A) with
  the rep's customers, 8 ms at a million customers where reading the rep's 2,000 customers
  in order and skipping the others takes one.
- a finer statistics sample of name_key (PostgreSQL): LIKE '%word%' is estimated from the
  histogram, and with the default 100 buckets a word in 2% of the names looked like 0.01%,
  so the planner sorted 20,000 matches instead of walking the created_at index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_scale_indexes"
down_revision: str | None = "0006_report_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # A trusted extension since PostgreSQL 13: the database owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customers_created",
            ["created_at", "id", "follow_up_due_at"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "ix_customers_name_key_trgm",
            ["name_key"],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={"name_key": "gin_trgm_ops"},
        )
        batch_op.drop_index("ix_customers_classification")
    with op.batch_alter_table("follow_ups", schema=None) as batch_op:
        batch_op.create_index("ix_follow_ups_created", ["created_at", "id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE customers ALTER COLUMN name_key SET STATISTICS 1000")
        op.execute("ANALYZE customers")  # now, rather than at autovacuum's next visit


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE customers ALTER COLUMN name_key SET STATISTICS -1")
    with op.batch_alter_table("follow_ups", schema=None) as batch_op:
        batch_op.drop_index("ix_follow_ups_created")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index("ix_customers_classification", ["classification"], unique=False)
        batch_op.drop_index("ix_customers_name_key_trgm")
        batch_op.drop_index("ix_customers_created")
    # pg_trgm stays: other objects may have come to use it.
