"""user self-service: a user's phone and chosen language

Revision ID: 0011_user_self_service
Revises: 0010_audit_regions

Users change their own name, phone and language (``PATCH /api/v1/auth/me``). Both new
columns are nullable: existing users have no phone, and no chosen language, so their
requests' ``Accept-Language`` decides as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_user_self_service"
down_revision: str | None = "0010_audit_regions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("locale", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("locale")
        batch_op.drop_column("phone")
