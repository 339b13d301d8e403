"""follow-up scope: the customer's owner and region on each follow-up

Revision ID: 0009_follow_up_scope
Revises: 0008_report_scope

A rep's follow-up list found its newest 50 by reading each of the rep's customers' newest
follow-ups, so it grew with the book (2,000 index probes for 2,000 customers, 21 ms at five
million follow-ups against 6 ms at 50,000). Each follow-up now carries its customer's owner
and region (moved with the customer when it is reassigned), and an index on (customer owner,
created_at, id) makes a rep's page a range of it. Deleted customers' follow-ups are left out
by a partial index of the deleted customers, not by checking every row's customer.

A search reads the page's ids from an index on (owner or region, created_at, id, name_key)
of the live customers, then their rows: asked for whole rows, PostgreSQL read a rep's whole
book from the table, and for a region walked every live customer newest first (25,000 rows
for a common word at a million customers) instead of the region's own 2,500.

The backfill is one UPDATE of every follow-up (PostgreSQL: about a minute for five million
rows; ``VACUUM ANALYZE follow_ups`` afterwards, or let autovacuum do it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_follow_up_scope"
down_revision: str | None = "0008_report_scope"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("follow_ups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer_owner_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("customer_region_id", sa.Uuid(), nullable=True))
    # UPDATE … FROM: PostgreSQL, and SQLite since 3.33.
    op.execute(
        "UPDATE follow_ups SET customer_owner_id = c.owner_id, customer_region_id = c.region_id "
        "FROM customers c WHERE c.id = follow_ups.customer_id"
    )
    with op.batch_alter_table("follow_ups", schema=None) as batch_op:
        batch_op.alter_column("customer_owner_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_follow_ups_customer_owner_id_users"),
            "users",
            ["customer_owner_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_follow_ups_customer_region_id_regions"),
            "regions",
            ["customer_region_id"],
            ["id"],
        )
        batch_op.create_index(
            "ix_follow_ups_customer_owner_created",
            ["customer_owner_id", "created_at", "id"],
            unique=False,
        )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        for scope in ("owner", "region"):
            batch_op.create_index(
                f"ix_customers_{scope}_search",
                [f"{scope}_id", "created_at", "id", "name_key"],
                unique=False,
                sqlite_where=sa.text("deleted_at IS NULL"),
                postgresql_where=sa.text("deleted_at IS NULL"),
            )
        batch_op.create_index(
            "ix_customers_deleted",
            ["id"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NOT NULL"),
            postgresql_where=sa.text("deleted_at IS NOT NULL"),
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE follow_ups")


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index("ix_customers_deleted")
        batch_op.drop_index("ix_customers_region_search")
        batch_op.drop_index("ix_customers_owner_search")
    with op.batch_alter_table("follow_ups", schema=None) as batch_op:
        batch_op.drop_index("ix_follow_ups_customer_owner_created")
        batch_op.drop_constraint(
            batch_op.f("fk_follow_ups_customer_region_id_regions"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_follow_ups_customer_owner_id_users"), type_="foreignkey"
        )
        batch_op.drop_column("customer_region_id")
        batch_op.drop_column("customer_owner_id")
