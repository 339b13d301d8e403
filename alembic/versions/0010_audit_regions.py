"""audit regions: the region of entries about rows that carry none of their own

Revision ID: 0010_audit_regions
Revises: 0009_follow_up_scope

A regional manager reads the audit entries of their region, found by the entry's
``region_id``; it was the changed row's own ``region_id`` column, so entries about rows
without one (follow-ups, contacts, quotes, installments, deliveries, complaint updates and
the regions themselves) had none and no manager saw them. They are written with a region
now (``RecordBase.__region_column__`` and ``__region_parent__``); this fills in the earlier
ones from the rows as they are today. Entries about rows deleted since keep no region.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_audit_regions"
down_revision: str | None = "0009_follow_up_scope"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# entity type: (the rows joined to the entry's entity, the region column among them)
_SOURCES: dict[str, tuple[str, str]] = {
    "follow_ups": ("follow_ups t", "t.customer_region_id"),
    "contacts": ("contacts t JOIN customers p ON p.id = t.customer_id", "p.region_id"),
    "quotes": ("quotes t JOIN opportunities p ON p.id = t.opportunity_id", "p.region_id"),
    "installments": ("installments t JOIN contracts p ON p.id = t.contract_id", "p.region_id"),
    "deliveries": ("deliveries t JOIN contracts p ON p.id = t.contract_id", "p.region_id"),
    "complaint_updates": (
        "complaint_updates t JOIN complaints p ON p.id = t.complaint_id",
        "p.region_id",
    ),
}


def upgrade() -> None:
    # UPDATE … FROM: PostgreSQL, and SQLite since 3.33.
    for entity_type, (rows, region) in _SOURCES.items():
        op.execute(
            f"UPDATE audit_log SET region_id = {region} FROM {rows} "
            f"WHERE t.id = audit_log.entity_id AND audit_log.entity_type = '{entity_type}' "
            "AND audit_log.region_id IS NULL"
        )
    op.execute(
        "UPDATE audit_log SET region_id = entity_id "
        "WHERE entity_type = 'regions' AND region_id IS NULL "
        "AND entity_id IN (SELECT id FROM regions)"
    )


def downgrade() -> None:
    # Before this revision no entry about these rows had a region.
    types = ", ".join(f"'{entity_type}'" for entity_type in (*_SOURCES, "regions"))
    op.execute(f"UPDATE audit_log SET region_id = NULL WHERE entity_type IN ({types})")
